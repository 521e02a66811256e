"""The sink as the forwarder writes to it, watched for `/readyz`: since when writes fail."""

from __future__ import annotations

import time

from .sink import Sink, WriteError


class WatchedSink:
    """The sink as the forwarder writes to it, noting since when writes fail (network errors,
    5xx, 429, auth: what is retried), for `/readyz`. A write InfluxDB answers, even refusing
    lines, ends a failure."""

    def __init__(self, sink: Sink) -> None:
        self.inner = sink
        self.name = sink.name
        self.failing_since: float | None = None  # time.monotonic() of the first failure
        self.last_error = ""

    async def start(self) -> None:
        await self.inner.start()

    async def write(self, body: bytes) -> None:
        try:
            await self.inner.write(body)
        except WriteError as exc:
            if exc.retryable:
                self._failed(exc)
            else:
                self.failing_since = None
            raise
        except Exception as exc:
            self._failed(exc)
            raise
        self.failing_since = None

    def _failed(self, exc: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = str(exc)[:200] or type(exc).__name__

    def failing_for_s(self) -> float | None:
        """How long writes have been failing; None while they succeed."""
        since = self.failing_since
        return None if since is None else time.monotonic() - since

    async def close(self) -> None:
        await self.inner.close()
