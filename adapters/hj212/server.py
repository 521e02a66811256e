"""The HJ 212 TCP server: the platform data loggers talk to. A thin I/O shell over the codec.

Per connection: tolerant framing, MN/PW check, CRC policy, data made durable through the
pipeline, then the reply. Replies leave in the order frames arrived. Bounded: buffer per
connection, unacknowledged frames per connection (reading pauses past it), connections per
address and in all; idle connections and stale partial frames are closed or dropped.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import structlog

from gateway import metrics
from gateway.pipeline import Pipeline
from gateway.power import PowerConverter
from gateway.registry import Registry
from gateway.spool import SpoolClosed, SpoolFull

from . import builder
from .config import Hj212Config
from .frame import Frame
from .framer import Framer
from .handler import ADAPTER, Backfill, FrameHandler, Reply
from .normalize import Source
from .reassembly import Reassembler

log = structlog.get_logger("adapters.hj212")


class Hj212Server:
    """Listens for data loggers. `registry` is read on every frame, so it can be swapped."""

    def __init__(
        self,
        config: Hj212Config,
        registry: Registry,
        pipeline: Pipeline,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        power: PowerConverter | None = None,
    ) -> None:
        self.config = config
        self.handler = FrameHandler(config, registry, pipeline, clock, power)
        self.connections: set[DeviceConnection] = set()
        self.by_mn: dict[str, DeviceConnection] = {}
        self.per_address: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def registry(self) -> Registry:
        return self.handler.registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self.handler.registry = registry

    @property
    def reassembler(self) -> Reassembler[tuple[Source, bool]]:
        return self.handler.reassembler

    @property
    def crc_seen(self) -> dict[str, str]:
        return self.handler.crc_seen

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        host, _, port = self.config.listen.rpartition(":")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: DeviceConnection(self), host or None, int(port), backlog=4096
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="hj212-sweeper")
        log.info("HJ 212 server listening", listen=f"{host}:{self.port}")

    async def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def close(self, timeout_s: float) -> None:
        """Stop accepting, let pending acknowledgements go out, then close every connection."""
        await self.stop_accepting()
        deadline = time.monotonic() + timeout_s
        while any(c.inflight for c in self.connections) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # bounded poll, only during shutdown
        for conn in list(self.connections):
            conn.close("shutdown")
        if self._server is not None:
            await self._server.wait_closed()

    # -- commands to devices -------------------------------------------------------------

    def send(self, mn: str, data: bytes) -> bool:
        """Send raw bytes to the connection a device last spoke on; False if not connected."""
        conn = self.by_mn.get(mn)
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        conn.transport.write(data)
        return True

    def request_history(self, mn: str, cn: str, begin: datetime, end: datetime) -> str | None:
        """Ask a connected device to back-fill [begin, end] (aware datetimes); return the QN."""
        device = self.registry.device(mn)
        conn = self.by_mn.get(mn)
        if device is None or conn is None:
            return None
        tz = device.timezone or self.handler.default_tz
        now = self.handler.clock()
        qn = builder.new_qn(now.astimezone(tz))
        version = {"2005": 0, "2017": 1, "2025": 2}.get(device.outlet.version or "", conn.version)
        request = builder.history_request(
            mn=mn,
            pw=device.outlet.password,
            cn=cn,
            begin=begin.astimezone(tz).replace(tzinfo=None),
            end=end.astimezone(tz).replace(tzinfo=None),
            qn=qn,
            st=conn.st_by_mn.get(mn, "32"),
            version=version,
        )
        if not self.send(mn, request):
            return None
        deadline = time.monotonic() + self.config.backfill_timeout_s
        conn.backfills[mn] = Backfill(cn, begin, end, qn, deadline)
        metrics.REPLIES_SENT.labels(cn=cn).inc()
        return qn

    # -- housekeeping ----------------------------------------------------------------------

    async def _sweep(self) -> None:
        interval = min(5.0, self.config.partial_frame_timeout_s / 2, self.config.idle_timeout_s / 2)
        while True:
            await asyncio.sleep(interval)
            try:
                self._sweep_once(time.monotonic())
            except Exception:  # housekeeping must outlive a bug in one pass; it is logged
                log.exception("connection sweep failed")
                metrics.ERRORS_TOTAL.labels(stage="hj212_sweep").inc()

    def _sweep_once(self, now: float) -> None:
        """Close idle connections, drop stale partial frames, expire back-fill windows."""
        for conn in list(self.connections):
            if now - conn.last_activity > self.config.idle_timeout_s:
                conn.close("idle")
            elif (
                conn.framer.pending
                and now - conn.partial_since > self.config.partial_frame_timeout_s
            ):
                self.handler.reject(conn, None, "partial_expired", f"{conn.framer.discard()} bytes")
            for mn, fill in list(conn.backfills.items()):
                if now > fill.deadline:
                    del conn.backfills[mn]
        self.handler.expire_uploads(now)


class DeviceConnection(asyncio.Protocol):
    """One TCP connection from a data logger (possibly relaying several MNs)."""

    __slots__ = (
        "_last_future",
        "_replies",
        "address",
        "backfills",
        "framer",
        "inflight",
        "last_activity",
        "partial_since",
        "paused",
        "peer",
        "server",
        "st_by_mn",
        "transport",
        "version",
    )

    def __init__(self, server: Hj212Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.address = "?"
        self.framer = Framer(max_buffer=server.config.max_buffer_bytes)
        self.last_activity = time.monotonic()
        self.partial_since = self.last_activity
        self.inflight = 0
        self.paused = False
        self.version = 1
        self.st_by_mn: dict[str, str] = {}
        self.backfills: dict[str, Backfill] = {}
        # replies in arrival order: (durability future or None, reply bytes or None, cn, t0)
        self._replies: deque[tuple[asyncio.Future[None] | None, bytes | None, str, float]] = deque()
        self._last_future: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # replies are small
        peer = self.transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        server = self.server
        count = server.per_address.get(self.address, 0)
        if len(server.connections) >= server.config.max_connections:
            self._refuse("max_connections")
            return
        if count >= server.config.max_connections_per_address:
            self._refuse("max_connections_per_address")
            return
        server.per_address[self.address] = count + 1
        server.connections.add(self)
        metrics.CONNECTIONS_OPEN.set(len(server.connections))

    def _refuse(self, reason: str) -> None:
        metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
        if self.server.handler.limiter.allow(("refused", self.address), time.monotonic()) >= 0:
            log.warning("connection refused", peer=self.peer, reason=reason)
        if self.transport is not None:
            self.transport.abort()
        self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        if self in server.connections:
            server.connections.discard(self)
            left = server.per_address.get(self.address, 1) - 1
            if left > 0:
                server.per_address[self.address] = left
            else:
                server.per_address.pop(self.address, None)
            metrics.CONNECTIONS_OPEN.set(len(server.connections))
            for raw in self.framer.flush():  # a last frame without its trailer is still data
                self._handle(raw, time.monotonic())
            for mn in [mn for mn, conn in server.by_mn.items() if conn is self]:
                del server.by_mn[mn]
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_activity = now
        had_partial = bool(self.framer.pending)
        junk_before = self.framer.stats.junk_bytes
        for raw in self.framer.feed(data):
            self._handle(raw, now)
        junk = self.framer.stats.junk_bytes - junk_before
        if junk:
            metrics.JUNK_BYTES.inc(junk)
        if self.framer.pending and not had_partial:
            self.partial_since = now

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
            self.transport.close()

    # -- frames ----------------------------------------------------------------------------

    def _handle(self, raw: bytes, t0: float) -> None:
        try:
            replies = self.server.handler.process(raw, self) or ()
        except (SpoolFull, SpoolClosed) as exc:  # not stored: no answer, the device resends
            self.server.handler.reject(self, None, "spool_full", str(exc))
            return
        except Exception:  # a bug with one frame must not cost the device its connection
            metrics.ERRORS_TOTAL.labels(stage="hj212_frame").inc()
            log.exception("frame handling failed", peer=self.peer)
            return
        for reply in replies:
            self._queue(reply, t0)

    def seen(self, frame: Frame) -> None:
        self.server.by_mn[frame.mn] = self
        if frame.st and frame.st != "91":
            self.st_by_mn[frame.mn] = frame.st
        if frame.flag is not None:
            self.version = frame.version

    # -- ordered replies -------------------------------------------------------------------

    def _queue(self, reply: Reply, t0: float) -> None:
        fut = reply.durable
        self._replies.append((fut, reply.data, reply.cn, t0))
        self.inflight += 1
        if fut is not None and fut is not self._last_future:
            fut.add_done_callback(self._flush)  # futures are shared by a commit group
            self._last_future = fut
        limit = self.server.config.max_inflight_per_connection
        if self.inflight >= limit and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        if fut is None and len(self._replies) == 1:
            self._flush(None)

    def _flush(self, _: object) -> None:
        out: list[bytes] = []
        now = time.monotonic()
        while self._replies:
            fut, reply, cn, t0 = self._replies[0]
            if fut is not None and not fut.done():
                break
            self._replies.popleft()
            self.inflight -= 1
            if fut is not None and (fut.cancelled() or fut.exception() is not None):
                metrics.FRAMES_REJECTED.labels(adapter=ADAPTER, reason="not_durable").inc()
                continue  # not stored: no acknowledgement; the device will resend
            if reply is not None:
                out.append(reply)
                metrics.replies_sent(cn).inc()
                if cn == "9014":
                    metrics.ACK_LATENCY.observe(now - t0)
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
        if self.paused and self.inflight <= self.server.config.max_inflight_per_connection // 2:
            if self.transport is not None:
                self.transport.resume_reading()
            self.paused = False
