"""InfluxDB sinks: one `write` of a line-protocol body, errors classified for the forwarder."""

from __future__ import annotations

from typing import Protocol


class WriteError(Exception):
    """A failed write. `retryable` writes are tried again later; others split or set aside."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        retryable: bool,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s

    @property
    def too_large(self) -> bool:
        return self.status == 413


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def write(self, body: bytes) -> None:
        """Write newline-separated line protocol with nanosecond timestamps; raise WriteError."""

    async def close(self) -> None: ...


def classify(status: int, message: str, retry_after: str | None) -> WriteError:
    """The WriteError for an HTTP status InfluxDB answered."""
    wait = None
    if retry_after:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = None
    # 400 = some lines are bad, 413 = too large: both are solved by splitting, not by waiting.
    retryable = status not in (400, 413, 422)
    return WriteError(
        f"HTTP {status}: {message[:300]}", status=status, retryable=retryable, retry_after_s=wait
    )
