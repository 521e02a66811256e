"""The replicated log in the spool's place: points are durable once the JetStream stream acks.

`append` returns a future done when the stream acknowledged the message holding the record:
with R replicas that means a quorum of the NATS servers stored it. Appends of one moment are
published together as one message (at most `max_message_bytes`); up to `max_inflight`
messages await their acks at once, so acks do not wait one round trip per frame. A message
without an ack in `ack_timeout_s` (a server died, a leader is being elected) is sent again
under the same `Nats-Msg-Id`, which the stream stores once; after `publish_deadline_s` its
future fails and its devices are not acknowledged (they send again).

Bounded: a full stream refuses the publish (`LogFull` on the futures); more than
`max_pending_bytes` waiting to be published refuses the append at once (`LogFull`, raised).
Either way nothing is acknowledged that the stream did not store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError

from gateway.ingest.spool import SpoolClosed, SpoolFull

from . import metrics
from .config import ClusterSection
from .stream import connect, ensure_stream

log = structlog.get_logger("gateway.cluster")

_STORE_FULL = ("maximum bytes", "maximum messages", "resource limits", "insufficient resources")


class LogFull(SpoolFull):
    """The stream (or the queue in front of it) is full: not stored, not acknowledged."""

    reason = "stream_full"


class LogClosed(SpoolClosed):
    """The log is closed or was never opened."""


@dataclass(slots=True)
class _Message:
    payloads: list[bytes] = field(default_factory=list)
    size: int = 0
    future: asyncio.Future[None] | None = None
    sealed_at: float = 0.0


class JetStreamLog:
    """What the pipeline appends to in cluster mode (`append` as the spool's)."""

    def __init__(self, cfg: ClusterSection, *, node: str) -> None:
        self.cfg = cfg
        self.node = node
        self._boot = f"{node}-{os.getpid()}-{os.urandom(4).hex()}"  # Nats-Msg-Id prefix
        self._seq = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._open: _Message | None = None  # taking appends
        self._ready: deque[_Message] = deque()  # sealed, waiting for a publish slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending_bytes = 0
        self._kick_scheduled = False
        self._closing = False
        self.published = 0  # messages acked
        self.refused = 0  # appends refused or failed
        # what a message waits for before it is published (the frame archive's fsync); its
        # exception fails the message, so nothing of it is acknowledged
        self.before_write: Callable[[], asyncio.Future[None] | None] | None = None

    async def open(self) -> None:
        """Connect and make sure the stream exists."""
        self._nc = await connect(self.cfg, f"{self.node}-ingest", lambda: self._closing)
        self._js = self._nc.jetstream(timeout=self.cfg.ack_timeout_s)
        await ensure_stream(self._js, self.cfg)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Publish what was appended and wait for the acks (at most `timeout_s`), then close
        the connection; what is not acked by then fails (it was never acknowledged)."""
        if self._nc is None:
            return
        self._closing = True
        self._kick()
        deadline = time.monotonic() + timeout_s
        while (self._tasks or self._ready or self._open) and time.monotonic() < deadline:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())
            else:
                await asyncio.sleep(0.01)
            self._kick()
        for task in list(self._tasks):
            task.cancel()
        left = [m for m in (*self._ready, self._open) if m is not None]
        for message in left:
            self._fail(message, LogClosed("log closed before the stream acknowledged"), "closed")
        self._ready.clear()
        self._open = None
        nc, self._nc = self._nc, None
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await asyncio.wait_for(nc.close(), 2.0)

    @property
    def pending_bytes(self) -> int:
        """Bytes appended and not yet acknowledged by the stream."""
        return self._pending_bytes

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def append(self, payload: bytes) -> asyncio.Future[None]:
        """Queue one record; the future completes once the stream acknowledged it. Records
        published together share one future (do not cancel it)."""
        if self._nc is None or self._closing:
            raise LogClosed("the cluster log is not open")
        size = len(payload)
        if size > self.cfg.max_message_bytes:
            raise ValueError(f"record of {size} bytes exceeds cluster.max_message_bytes")
        if self._pending_bytes + size > self.cfg.max_pending_bytes:
            self.refused += 1
            metrics.REFUSED.labels(reason="pending_full").inc()
            raise LogFull(f"{self._pending_bytes} bytes already wait for the stream")
        message = self._open
        if message is None or message.size + size > self.cfg.max_message_bytes:
            if message is not None:
                self._seal(message)
            message = self._open = _Message(future=asyncio.get_running_loop().create_future())
        message.payloads.append(payload)
        message.size += size
        self._pending_bytes += size
        metrics.PENDING_BYTES.set(self._pending_bytes)
        if not self._kick_scheduled:  # the appends of this moment go together
            self._kick_scheduled = True
            asyncio.get_running_loop().call_soon(self._kick)
        assert message.future is not None
        return message.future

    def _seal(self, message: _Message) -> None:
        message.sealed_at = time.monotonic()
        self._ready.append(message)
        if self._open is message:
            self._open = None

    def _kick(self) -> None:
        """Start publishes while slots are free: sealed messages first, then the open one."""
        self._kick_scheduled = False
        while len(self._tasks) < self.cfg.max_inflight:
            if not self._ready and self._open is not None and self._open.payloads:
                self._seal(self._open)
            if not self._ready:
                break
            message = self._ready.popleft()
            task = asyncio.create_task(self._publish(message), name="cluster-publish")
            self._tasks.add(task)
            task.add_done_callback(self._done)
        metrics.INFLIGHT.set(len(self._tasks))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster publish failed unexpectedly", exc_info=task.exception())
        self._kick()

    async def _publish(self, message: _Message) -> None:
        self._seq += 1
        msg_id = f"{self._boot}-{self._seq}"
        body = b"".join(message.payloads)
        deadline = message.sealed_at + self.cfg.publish_deadline_s
        try:
            ready = self.before_write() if self.before_write is not None else None
            if ready is not None:
                await asyncio.shield(ready)
        except Exception as exc:  # the archive could not be written: nothing is acknowledged
            self._fail(message, exc, "archive")
            return
        attempt = 0
        while True:
            assert self._js is not None or self._closing
            try:
                if self._js is None:
                    raise LogClosed("log closed")
                await self._js.publish(
                    self.cfg.subject,
                    body,
                    timeout=self.cfg.ack_timeout_s,
                    stream=self.cfg.stream,
                    headers={"Nats-Msg-Id": msg_id},
                )
                break
            except APIError as exc:
                text = (exc.description or "").lower()
                if any(marker in text for marker in _STORE_FULL):
                    self._fail(message, LogFull(f"stream {self.cfg.stream} full: {text}"), "full")
                    return
                problem: Exception = exc  # no leader now, ...: try again
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                problem = exc
            attempt += 1
            if time.monotonic() >= deadline or self._nc is None or self._nc.is_closed:
                log.error("stream did not acknowledge; devices not acked", error=repr(problem))
                self._fail(message, problem, "deadline")
                return
            metrics.PUBLISH_RETRIES.inc()
            if attempt == 1 or attempt % 10 == 0:
                log.warning("publish not acknowledged; sending again", error=repr(problem))
            await asyncio.sleep(min(0.05 * attempt, 1.0))
        self.published += 1
        metrics.PUBLISHED.inc()
        metrics.PUBLISH_SECONDS.observe(time.monotonic() - message.sealed_at)
        self._settle(message)
        assert message.future is not None
        if not message.future.done():
            message.future.set_result(None)

    def _settle(self, message: _Message) -> None:
        self._pending_bytes -= message.size
        message.size = 0
        metrics.PENDING_BYTES.set(self._pending_bytes)

    def _fail(self, message: _Message, exc: BaseException, reason: str) -> None:
        self._settle(message)
        self.refused += len(message.payloads)
        label = "stream_full" if reason == "full" else reason
        metrics.REFUSED.labels(reason=label).inc(len(message.payloads))
        if message.future is not None and not message.future.done():
            message.future.set_exception(exc)
