"""The HJ 212 TCP server: the platform data loggers talk to. A thin I/O shell over the codec.

Per connection: tolerant framing, MN/PW check, CRC policy, data made durable through the
pipeline, then the reply. Replies leave in the order frames arrived. Bounded: bytes held without
a whole frame, unacknowledged frames and unsent reply bytes per connection (reading pauses past
them), connections per address (in all, and without an accepted frame) and in all. Closed: a
connection whose frame does not complete in time, that sends no complete frame for a while or no
accepted frame at all, or that does not take its replies. The deadlines are queues ordered by
time, so a sweep costs the connections that expire, not all of them.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import structlog

from gateway import metrics
from gateway.ingest import Pipeline, PowerConverter, SpoolClosed, SpoolFull
from gateway.registry import Registry

from . import builder
from .config import Hj212Config
from .convert import Source
from .frame import Frame
from .framer import Framer
from .handler import ADAPTER, Backfill, FrameHandler, Reply
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
        self.addresses: dict[str, _Address] = {}
        # deadline queues, oldest first: connection -> when its clock started
        self.unproven: OrderedDict[DeviceConnection, float] = OrderedDict()  # connected at
        self.idle: OrderedDict[DeviceConnection, float] = OrderedDict()  # last complete frame
        self.partial: OrderedDict[DeviceConnection, float] = OrderedDict()  # frame begun at
        self.write_blocked: OrderedDict[DeviceConnection, float] = OrderedDict()  # paused at
        self._backfilling: set[DeviceConnection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def per_address(self) -> dict[str, int]:
        """Open connections by remote address."""
        return {a: s.proven + len(s.unproven) for a, s in self.addresses.items()}

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
        closing = list(self.connections)
        for conn in closing:
            conn.close("shutdown")
        # replies still buffered go out unless the device does not read them by the deadline
        while any(c.transport is not None for c in closing) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for conn in closing:
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    # -- commands to devices -------------------------------------------------------------

    def send(self, mn: str, data: bytes) -> bool:
        """Send raw bytes to the connection a device last spoke on; False if not connected."""
        conn = self.by_mn.get(mn)
        return conn is not None and conn.write(data)

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
        self._backfilling.add(conn)
        metrics.REPLIES_SENT.labels(cn=cn).inc()
        return qn

    # -- admission and accounting ----------------------------------------------------------

    def _admit(self, conn: DeviceConnection, now: float) -> bool:
        """Count a new connection in, or refuse it. At a cap, the oldest connection without an
        accepted frame in the cap's scope (its address, or all) is closed for the new one; an
        address with `max_connections_per_address` connections, or a server whose every
        connection has sent an accepted frame, refuses it."""
        cfg = self.config
        addr = self.addresses.get(conn.address)
        if addr is not None:
            if addr.proven + len(addr.unproven) >= cfg.max_connections_per_address:
                conn.refuse("max_connections_per_address")
                return False
            if len(addr.unproven) >= cfg.max_unproven_per_address:
                next(iter(addr.unproven)).close("max_unproven_per_address")
        if len(self.connections) >= cfg.max_connections:
            if not self.unproven:
                conn.refuse("max_connections")
                return False
            next(iter(self.unproven)).close("max_connections")
        addr = self.addresses.setdefault(conn.address, _Address())  # closing may have dropped it
        conn.attached = True
        self.connections.add(conn)
        addr.unproven[conn] = None
        self.unproven[conn] = now
        self.idle[conn] = now
        metrics.CONNECTIONS_OPEN.set(len(self.connections))
        return True

    def _prove(self, conn: DeviceConnection) -> None:
        """`conn` sent its first accepted frame: it counts as a device of its address."""
        conn.proven = True
        del self.unproven[conn]
        addr = self.addresses[conn.address]
        del addr.unproven[conn]
        addr.proven += 1

    def _forget(self, conn: DeviceConnection) -> None:
        """Take a closing or lost connection out of every count and deadline queue."""
        if not conn.attached:
            return
        conn.attached = False
        self.connections.discard(conn)
        addr = self.addresses.get(conn.address)
        if addr is not None:
            if conn.proven:
                addr.proven -= 1
            else:
                addr.unproven.pop(conn, None)
            if not addr.proven and not addr.unproven:
                del self.addresses[conn.address]
        for queue in (self.unproven, self.idle, self.partial, self.write_blocked):
            queue.pop(conn, None)
        self._backfilling.discard(conn)
        for mn in conn.mns:
            if self.by_mn.get(mn) is conn:
                del self.by_mn[mn]
        metrics.CONNECTIONS_OPEN.set(len(self.connections))

    # -- housekeeping ----------------------------------------------------------------------

    def sweep_interval(self) -> float:
        """Seconds between sweeps: at most half of the shortest deadline, at most 5 s."""
        cfg = self.config
        return min(
            5.0,
            cfg.partial_frame_timeout_s / 2,
            cfg.frame_timeout_s / 2,
            cfg.idle_timeout_s / 2,
            cfg.first_frame_timeout_s / 2,
            cfg.write_blocked_timeout_s / 2,
        )

    async def _sweep(self) -> None:
        interval = self.sweep_interval()
        while True:
            await asyncio.sleep(interval)
            try:
                self._sweep_once(time.monotonic())
            except Exception:  # housekeeping must outlive a bug in one pass; it is logged
                log.exception("connection sweep failed")
                metrics.ERRORS_TOTAL.labels(stage="hj212_sweep").inc()

    def _sweep_once(self, now: float) -> None:
        """Close connections past a deadline, drop stale partial frames, expire back-fill
        windows. A connection whose reading the gateway itself paused (acknowledgements
        waiting for the spool) is not held to its idle and frame deadlines meanwhile."""
        cfg = self.config
        for conn, _ in _due(self.unproven, now - cfg.first_frame_timeout_s):
            conn.close("no_frame")
        for conn, _ in _due(self.write_blocked, now - cfg.write_blocked_timeout_s):
            conn.close("write_blocked")
        for conn, _ in _due(self.idle, now - cfg.idle_timeout_s):
            if conn.inflight_paused:
                _restart(self.idle, conn, now)
            else:
                conn.close("idle")
        slow = now - cfg.frame_timeout_s
        stale = now - min(cfg.frame_timeout_s, cfg.partial_frame_timeout_s)
        for conn, since in _due(self.partial, stale):
            if conn.inflight_paused:
                _restart(self.partial, conn, now)
            elif since < slow:
                conn.close("slow_frame")
            else:  # partial_frame_timeout_s is the shorter: drop the bytes, keep the device
                del self.partial[conn]
                self.handler.reject(conn, None, "partial_expired", f"{conn.framer.discard()} bytes")
        for conn in list(self._backfilling):
            for mn, fill in list(conn.backfills.items()):
                if now > fill.deadline:
                    del conn.backfills[mn]
            if not conn.backfills:
                self._backfilling.discard(conn)
        self.handler.expire_uploads(now)


class _Address:
    """The connections from one remote address: devices and the unproven, oldest first."""

    __slots__ = ("proven", "unproven")

    def __init__(self) -> None:
        self.proven = 0  # connections that have sent an accepted frame
        self.unproven: OrderedDict[DeviceConnection, None] = OrderedDict()


def _due(
    queue: OrderedDict[DeviceConnection, float], before: float
) -> list[tuple[DeviceConnection, float]]:
    """The entries of a deadline queue whose clock started before `before`, oldest first."""
    due: list[tuple[DeviceConnection, float]] = []
    for conn, since in queue.items():
        if since >= before:
            break
        due.append((conn, since))
    return due


def _restart(
    queue: OrderedDict[DeviceConnection, float], conn: DeviceConnection, now: float
) -> None:
    queue[conn] = now
    queue.move_to_end(conn)


_QUIET_CLOSES = frozenset({"idle", "shutdown"})


class DeviceConnection(asyncio.Protocol):
    """One TCP connection from a data logger (possibly relaying several MNs)."""

    __slots__ = (
        "_held",
        "_last_future",
        "_releasing",
        "_replies",
        "address",
        "attached",
        "backfills",
        "framer",
        "inflight",
        "inflight_paused",
        "mns",
        "peer",
        "proven",
        "reading_paused",
        "server",
        "st_by_mn",
        "transport",
        "version",
        "write_paused",
    )

    def __init__(self, server: Hj212Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.address = "?"
        self.framer = Framer(max_buffer=server.config.max_buffer_bytes)
        self.attached = False  # counted in the server's connections
        self.proven = False  # an accepted frame came over it
        self.mns: tuple[str, ...] = ()  # MNs seen on it
        self.inflight = 0
        self.inflight_paused = False  # max_inflight_per_connection unacknowledged frames
        self.write_paused = False  # the transport holds write_buffer_high_bytes unsent
        self.reading_paused = False
        self.version = 1
        self.st_by_mn: dict[str, str] = {}
        self.backfills: dict[str, Backfill] = {}
        # replies in arrival order: (durability future or None, reply bytes or None, cn, t0)
        self._replies: deque[tuple[asyncio.Future[None] | None, bytes | None, str, float]] = deque()
        self._last_future: asyncio.Future[None] | None = None
        # frames received but not yet handled because reading is paused: (raw, t0)
        self._held: deque[tuple[bytes, float]] | None = None
        self._releasing = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # replies are small
        peer = self.transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        high = self.server.config.write_buffer_high_bytes
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        self.server._admit(self, time.monotonic())

    def refuse(self, reason: str) -> None:
        """Turn a new connection away (it was never counted)."""
        metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
        if self.server.handler.limiter.allow(("refused", self.address), time.monotonic()) >= 0:
            log.warning("connection refused", peer=self.peer, reason=reason)
        if self.transport is not None:
            self.transport.abort()
        self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.attached:  # the device hung up: what it sent whole is still data
            now = time.monotonic()
            held, self._held = self._held, None
            for raw, t0 in held or ():
                self._handle(raw, t0)
            for raw in self.framer.flush():  # a last frame without its trailer, too
                self._handle(raw, now)
            self.server._forget(self)

    def data_received(self, data: bytes) -> None:
        if not self.attached:
            return
        now = time.monotonic()
        server = self.server
        framer = self.framer
        junk_before = framer.stats.junk_bytes
        frames = framer.feed(data)
        junk = framer.stats.junk_bytes - junk_before
        if junk:
            metrics.JUNK_BYTES.inc(junk)
        if frames:
            _restart(server.idle, self, now)
        if framer.pending > 1:  # a frame has begun (a lone '#' may be junk)
            if frames or self not in server.partial:
                _restart(server.partial, self, now)
        else:
            server.partial.pop(self, None)
        if frames:
            self._run(frames, now)

    def pause_writing(self) -> None:
        """The transport holds `write_buffer_high_bytes` unsent: stop reading the device."""
        if self.attached and not self.write_paused:
            self.write_paused = True
            self.server.write_blocked[self] = time.monotonic()
            self._apply_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.server.write_blocked.pop(self, None)
        self._release()

    def write(self, data: bytes) -> bool:
        """Send bytes; past `write_buffer_max_bytes` unsent the connection is closed (False)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.config.write_buffer_max_bytes:
            self.close("write_blocked")
            return False
        return True

    def close(self, reason: str) -> None:
        """Close for `reason` (counted). Unsent replies are dropped (the device resends its
        frames), except at shutdown, where they go out first."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.server._forget(self)  # going already: it no longer counts
            return
        metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
        self.server._forget(self)
        self._held = None
        if reason not in _QUIET_CLOSES:
            suppressed = self.server.handler.limiter.allow(
                ("closed", self.address, reason), time.monotonic()
            )
            if suppressed >= 0:
                log.warning(
                    "connection closed",
                    peer=self.peer,
                    reason=reason,
                    suppressed_since_last=suppressed,
                )
        if reason == "shutdown" or not transport.get_write_buffer_size():
            transport.close()
        else:
            transport.abort()

    # -- frames ----------------------------------------------------------------------------

    def _run(self, frames: list[bytes], t0: float) -> None:
        """Handle frames in order; once reading is to pause, the rest wait in `_held`."""
        for i, raw in enumerate(frames):
            if not self.attached:
                return
            if self._held or self.inflight_paused or self.write_paused:
                if self._held is None:
                    self._held = deque()
                self._held.extend((r, t0) for r in frames[i:])
                break
            self._handle(raw, t0)
        self._apply_reading()

    def _release(self) -> None:
        """Handle the frames held back while nothing blocks, then resume reading if none is left."""
        if self._releasing or not self.attached:
            return
        self._releasing = True
        try:
            held = self._held
            while held and self.attached and not (self.inflight_paused or self.write_paused):
                raw, t0 = held.popleft()
                self._handle(raw, t0)
        finally:
            self._releasing = False
        self._apply_reading()

    def _apply_reading(self) -> None:
        """Pause reading while replies or bytes are backed up or frames are held; resume when
        none is. The device could not send meanwhile, so its idle and frame clocks restart."""
        transport = self.transport
        if transport is None or transport.is_closing() or not self.attached:
            return
        pause = self.inflight_paused or self.write_paused or bool(self._held)
        if pause == self.reading_paused:
            return
        self.reading_paused = pause
        if pause:
            transport.pause_reading()
            return
        transport.resume_reading()
        now = time.monotonic()
        _restart(self.server.idle, self, now)
        if self in self.server.partial:
            _restart(self.server.partial, self, now)

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
        if not self.attached:
            return
        if not self.proven:
            self.server._prove(self)
        self.server.by_mn[frame.mn] = self
        if frame.mn not in self.mns:
            self.mns = (*self.mns, frame.mn)
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
        if self.inflight >= self.server.config.max_inflight_per_connection:
            self.inflight_paused = True  # the frame loop stops and reading pauses
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
        if out:
            self.write(b"".join(out))
        limit = self.server.config.max_inflight_per_connection
        if self.inflight_paused and self.inflight <= limit // 2:
            self.inflight_paused = False
            self._release()
