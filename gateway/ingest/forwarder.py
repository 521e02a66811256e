"""Moves spooled records to InfluxDB in order: batches by size or time, each delivered by
`gateway.influx.delivery` (retries with backoff honouring Retry-After, splits on refusal, sets
aside lines InfluxDB refuses in the bounded poison file)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import structlog

from gateway import metrics
from gateway.influx.delivery import BatchDelivery
from gateway.influx.sink import Sink
from gateway.ingest.segments import Position
from gateway.ingest.spool import ReadBatch, Spool

log = structlog.get_logger("gateway.forwarder")


class Forwarder:
    def __init__(
        self,
        spool: Spool,
        sink: Sink,
        *,
        batch_lines: int = 5000,
        flush_interval_s: float = 1.0,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        poison_path: Path,
        poison_max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.spool = spool
        self.sink = sink
        self.batch_lines = batch_lines
        self.flush_interval_s = flush_interval_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.points_written = 0
        self._draining = False
        self._stopped = asyncio.Event()
        self.delivery = BatchDelivery(
            sink,
            self._stopped,
            poison_path=poison_path,
            poison_max_bytes=poison_max_bytes,
            retry_min_s=retry_min_s,
            retry_max_s=retry_max_s,
        )

    @property
    def healthy(self) -> bool:
        """The last write to InfluxDB succeeded."""
        return self.delivery.healthy

    async def run(self) -> None:
        """Deliver until `stop` is called; what is not delivered stays in the spool. An
        unexpected error is logged and delivery starts again from the spool's cursor."""
        failures = 0
        while not self._stopped.is_set():
            try:
                await self._deliver_all()
                return
            except Exception:
                failures += 1
                self.delivery.healthy = False
                metrics.ERRORS_TOTAL.labels(stage="forwarder").inc()
                log.exception("forwarder failed; restarting from the spool cursor")
                await self._sleep(min(self.retry_max_s, self.retry_min_s * 2 ** min(failures, 10)))

    async def _deliver_all(self) -> None:
        pos = self.spool.cursor
        first_seen: float | None = None
        while not self._stopped.is_set():
            batch = self.spool.read(pos, self.batch_lines)
            if not batch.payloads:
                first_seen = None
                if self._draining:
                    return
                await self.spool.wait_for_data(pos, 0.5)
                continue
            lines = sum(p.count(b"\n") for p in batch.payloads)
            if lines < self.batch_lines and not self._draining:
                now = time.monotonic()
                first_seen = first_seen or now
                if now - first_seen < self.flush_interval_s:
                    # linger for a fuller batch without re-reading the spool at every commit
                    target = self.spool.depth_bytes * self.batch_lines / max(lines, 1)
                    await self._linger(batch.end, first_seen + self.flush_interval_s, target)
                    continue
            first_seen = None
            if not await self.delivery.deliver(b"".join(batch.payloads)):
                return  # stopped while retrying
            self.spool.commit(batch)
            self.points_written += lines
            metrics.POINTS_WRITTEN.inc(lines)
            metrics.BATCHES_WRITTEN.inc()
            pos = batch.end

    async def _linger(self, end: Position, deadline: float, target_bytes: float) -> None:
        """Wait until the spool holds about `target_bytes` unsent, or until `deadline`."""
        while not self._stopped.is_set() and not self._draining:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.spool.depth_bytes >= target_bytes:
                return
            await self.spool.wait_for_data(end, remaining)
            end = self.spool.end

    async def drain(self, timeout_s: float, task: asyncio.Task[None]) -> None:
        """Deliver what is spooled, for at most `timeout_s`, then stop."""
        self._draining = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except Exception:  # TimeoutError, or the task's own failure: the spool keeps the rest
            log.warning(
                "forwarder drain timed out; the rest stays in the spool",
                depth_bytes=self.spool.depth_bytes,
            )
        self._stopped.set()
        task.cancel()

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), delay)

    def stop(self) -> None:
        self._stopped.set()


__all__ = ["Forwarder", "ReadBatch"]
