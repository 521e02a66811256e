"""A writer: drains the stream into InfluxDB through a durable pull consumer that any number of
writer processes share (each message goes to one of them).

A message is acked only after InfluxDB accepted its points (or set aside the lines it refuses),
so a writer killed mid-batch loses nothing: its unacked messages are delivered again after
`ack_wait_s`, to whichever writer asks. InfluxDB keeps one point per series and time, so a
message written twice is the same points. While InfluxDB is down the writer retries the same
batch and tells the stream it is still working on it (no redelivery meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from gateway import metrics as gateway_metrics
from gateway.influx.delivery import BatchDelivery
from gateway.influx.sink import Sink

from . import metrics
from .config import ClusterSection
from .stream import connect, ensure_stream

log = structlog.get_logger("gateway.cluster.writer")


class StreamWriter:
    def __init__(
        self,
        cfg: ClusterSection,
        sink: Sink,
        *,
        node: str,
        poison_path: Path,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.node = node
        self.points_written = 0
        self.messages_written = 0
        self._nc: Client | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopped = asyncio.Event()
        self.delivery = BatchDelivery(
            sink,
            self._stopped,
            poison_path=poison_path,
            poison_max_bytes=cfg.poison_max_bytes,
            retry_min_s=retry_min_s,
            retry_max_s=retry_max_s,
        )

    @property
    def healthy(self) -> bool:
        """The last write to InfluxDB succeeded."""
        return self.delivery.healthy

    async def open(self) -> None:
        """Connect, make sure the stream and the shared durable consumer exist."""
        self._nc = await connect(self.cfg, f"{self.node}-writer", self._stopped.is_set)
        js = self._nc.jetstream(timeout=10.0)
        await ensure_stream(js, self.cfg)
        consumer = api.ConsumerConfig(
            durable_name=self.cfg.consumer,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.cfg.ack_wait_s,
            max_ack_pending=self.cfg.max_ack_pending,
        )
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._sub = await js.pull_subscribe(
                    "", durable=self.cfg.consumer, stream=self.cfg.stream, config=consumer
                )
                return
            except (nats.errors.Error, TimeoutError) as exc:  # another writer made it meanwhile
                if time.monotonic() >= deadline:
                    raise
                log.info("consumer not ready yet", error=repr(exc))
                await asyncio.sleep(0.5)

    async def run(self) -> None:
        """Fetch, write, ack, until `stop`; a fetch that finds nothing waits briefly."""
        assert self._sub is not None, "open() first"
        while not self._stopped.is_set():
            try:
                msgs = await self._sub.fetch(self.cfg.fetch_batch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as exc:  # a server went away: the client reconnects
                log.warning("fetch failed; trying again", error=repr(exc))
                await self._sleep(0.2)
                continue
            if not msgs:
                continue
            await self._write(msgs)

    async def _write(self, msgs: list[Msg]) -> None:
        again = sum(1 for m in msgs if m.metadata.num_delivered > 1)
        if again:
            metrics.WRITER_REDELIVERED.inc(again)
        body = b"".join(m.data for m in msgs)
        if not await self.delivery.deliver(body, lambda: self._still_working(msgs)):
            return  # stopped: not acked, so delivered again to another writer
        for m in msgs:
            try:
                await m.ack()
            except nats.errors.Error as exc:  # lost: the message comes again (same points)
                log.warning("ack not sent", error=repr(exc))
        lines = body.count(b"\n")
        self.points_written += lines
        self.messages_written += len(msgs)
        metrics.WRITER_MESSAGES.inc(len(msgs))
        gateway_metrics.POINTS_WRITTEN.inc(lines)
        gateway_metrics.BATCHES_WRITTEN.inc()

    async def _still_working(self, msgs: list[Msg]) -> None:
        for m in msgs:
            try:
                await m.in_progress()
            except nats.errors.Error:
                return

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    def stop(self) -> None:
        """End `run` after the batch in hand (written and acked, or left for redelivery)."""
        self._stopped.set()

    async def close(self) -> None:
        self.stop()
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await asyncio.wait_for(nc.close(), 2.0)
