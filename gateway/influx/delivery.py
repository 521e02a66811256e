"""One batch of line protocol into InfluxDB, until every line is written or set aside: what the
spool's forwarder and the cluster's stream writers both do.

Retries with backoff (honouring Retry-After) while the failure is retryable; a batch InfluxDB
refuses is split in halves down to the line, and a line it refuses is set aside in the poison
file. The poison file is bounded (`poison_max_bytes`): past it, refused lines are only counted
(`influx_poison_lines_dropped_total`). Refusals are logged once a minute at most, with the
number suppressed since the last line."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from gateway import metrics
from gateway.ratelimit import LogLimiter

from .sink import Sink, WriteError

log = structlog.get_logger("gateway.influx.delivery")

Waiting = Callable[[], Awaitable[None]]  # called before each pause between retries


class BatchDelivery:
    def __init__(
        self,
        sink: Sink,
        stopped: asyncio.Event,
        *,
        poison_path: Path,
        poison_max_bytes: int = 256 * 1024 * 1024,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.sink = sink
        self.stopped = stopped
        self.poison_path = poison_path
        self.poison_max_bytes = poison_max_bytes
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.healthy = True  # the last write succeeded
        self._poison_log = LogLimiter(60.0)

    async def deliver(self, body: bytes, waiting: Waiting | None = None) -> bool:
        """Write `body`, retrying; True once every line is written or set aside, False when
        `stopped` was set first (nothing more is known of what was written)."""
        attempt = 0
        while not self.stopped.is_set():
            try:
                await self.sink.write(body)
                if not self.healthy:
                    log.info("InfluxDB writes succeed again")
                self.healthy = True
                return True
            except WriteError as exc:
                if not exc.retryable:
                    return await self._split(body, exc, waiting)
                attempt += 1
                delay = exc.retry_after_s
                if delay is None:
                    delay = min(self.retry_max_s, self.retry_min_s * 2 ** min(attempt, 16))
                    delay *= random.uniform(0.5, 1.0)
                metrics.WRITE_RETRIES.labels(reason=str(exc.status or "network")).inc()
                if self.healthy or attempt % 10 == 0:
                    log.warning(
                        "InfluxDB write failed, will retry",
                        error=str(exc),
                        retry_in_s=round(delay, 2),
                        attempt=attempt,
                    )
                self.healthy = False
                if waiting is not None:
                    await waiting()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopped.wait(), delay)
        return False

    async def _split(self, body: bytes, exc: WriteError, waiting: Waiting | None) -> bool:
        lines = body.splitlines(keepends=True)
        if len(lines) <= 1:
            self._set_aside(body, exc)
            return True
        half = len(lines) // 2
        first, second = b"".join(lines[:half]), b"".join(lines[half:])
        return await self.deliver(first, waiting) and await self.deliver(second, waiting)

    def _set_aside(self, line: bytes, exc: WriteError) -> None:
        metrics.POISON_LINES.inc()
        reason = b"# " + str(exc).encode("utf-8", "replace").replace(b"\n", b" ") + b"\n"
        entry = reason + (line if line.endswith(b"\n") else line + b"\n")
        size = self.poison_path.stat().st_size if self.poison_path.exists() else 0
        kept = size + len(entry) <= self.poison_max_bytes
        suppressed = self._poison_log.allow("poison", time.monotonic())
        if suppressed >= 0:
            log.error(
                "InfluxDB refused a line; set aside"
                if kept
                else "InfluxDB refused a line; the poison file is full, the line is only counted",
                reason=str(exc)[:200],
                poison_file=str(self.poison_path),
                suppressed_since_last=suppressed,
            )
        if not kept:
            metrics.POISON_DROPPED.inc()
            return
        self.poison_path.parent.mkdir(parents=True, exist_ok=True)
        with self.poison_path.open("ab") as out:
            out.write(entry)
