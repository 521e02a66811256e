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
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import cast
from zoneinfo import ZoneInfo

import structlog

from gateway import metrics
from gateway.pipeline import Pipeline
from gateway.ratelimit import LogLimiter
from gateway.registry import Device, Registry

from . import builder
from .config import Hj212Config
from .cp import CpData, parse_cp, parse_hj212_time
from .crc import accepts
from .errors import HJ212Error
from .frame import Frame, parse_frame
from .framer import Framer
from .normalize import DATA_COMMANDS, Source, normalize
from .reassembly import Reassembler

log = structlog.get_logger("adapters.hj212")
ADAPTER = "hj212"
UPLOAD_PREFIXES = ("2", "3")
_RECEIVED = metrics.FRAMES_RECEIVED.labels(
    adapter=ADAPTER
)  # data and device-info uploads are answered with 9014


@dataclass(slots=True)
class _Backfill:
    cn: str
    begin: datetime
    end: datetime
    qn: str
    deadline: float


class Hj212Server:
    """Listens for data loggers. `registry` is read on every frame, so it can be swapped."""

    def __init__(
        self,
        config: Hj212Config,
        registry: Registry,
        pipeline: Pipeline,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.registry = registry
        self.pipeline = pipeline
        self.clock = clock
        self.default_tz = ZoneInfo(config.timezone)
        self.reassembler = Reassembler()
        self.limiter = LogLimiter(config.error_log_interval_s)
        self.connections: set[DeviceConnection] = set()
        self.by_mn: dict[str, DeviceConnection] = {}
        self.per_address: dict[str, int] = {}
        self.crc_seen: dict[str, str] = {}  # MN -> CRC variant it uses
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

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
        tz = device.timezone or self.default_tz
        now = self.clock()
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
        conn.backfills[mn] = _Backfill(cn, begin, end, qn, deadline)
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
                self.reject(conn, None, "partial_expired", f"{conn.framer.discard()} bytes")
            for mn, fill in list(conn.backfills.items()):
                if now > fill.deadline:
                    del conn.backfills[mn]
        self.reassembler.expire(now)

    def reject(self, conn: DeviceConnection, mn: str | None, reason: str, detail: str) -> None:
        metrics.FRAMES_REJECTED.labels(adapter=ADAPTER, reason=reason).inc()
        key = (mn or conn.peer, reason)
        suppressed = self.limiter.allow(key, time.monotonic())
        if suppressed >= 0:
            log.warning(
                "frame rejected",
                peer=conn.peer,
                mn=mn,
                reason=reason,
                detail=detail,
                suppressed_since_last=suppressed,
            )

    def key_for(self, mn: str) -> bytes | None:
        device = self.registry.device(mn)
        return device.sm4_key if device is not None else None


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
        self.backfills: dict[str, _Backfill] = {}
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
        if self.server.limiter.allow(("refused", self.address), time.monotonic()) >= 0:
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
            for mn in [mn for mn, conn in server.by_mn.items() if conn is self]:
                del server.by_mn[mn]
            for raw in self.framer.flush():
                self._handle(raw, time.monotonic())
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
        server = self.server
        _RECEIVED.inc()
        try:
            frame = parse_frame(raw, server.key_for)
        except HJ212Error as exc:
            server.reject(self, None, exc.reason, str(exc))
            return
        device = server.registry.device(frame.mn)
        if device is None:
            server.reject(self, frame.mn, "unknown_mn", f"MN {frame.mn!r} is not registered")
            return
        if not device.outlet.open and frame.pw != device.outlet.password:
            server.reject(self, frame.mn, "bad_password", "PW does not match the registry")
            return
        policy = device.outlet.crc_policy or server.config.crc_policy
        if not accepts(policy, frame.crc):
            server.reject(
                self, frame.mn, "crc", f"CRC {frame.crc_sent} matches no accepted variant"
            )
            return
        self._note_device(frame)
        cn = frame.cn
        if cn in ("9011", "9012", "9014", "9013"):
            self._answer_received(frame)
        elif cn == "1013":
            self._queue(None, builder.notice_ack(frame), "9013", t0)
            if server.config.answer_time_requests:
                self._queue(None, self._time_setting(frame, device), "1012", t0)
        elif cn in ("9015", "9021"):
            if frame.wants_reply:
                self._queue(None, builder.notice_ack(frame), "9013", t0)
        elif cn in DATA_COMMANDS:
            self._store(frame, device, t0)
        elif cn.startswith(UPLOAD_PREFIXES) and frame.wants_reply:
            self._queue(None, builder.data_ack(frame), "9014", t0)

    def _note_device(self, frame: Frame) -> None:
        server = self.server
        server.by_mn[frame.mn] = self
        if frame.st and frame.st != "91":
            self.st_by_mn[frame.mn] = frame.st
        if frame.flag is not None:
            self.version = frame.version
        if server.crc_seen.get(frame.mn) != frame.crc:
            server.crc_seen[frame.mn] = frame.crc
            if frame.crc != "hj212":
                log.info("device uses a non-standard CRC", mn=frame.mn, variant=frame.crc)
        metrics.crc_variant(frame.crc).inc()

    def _store(self, frame: Frame, device: Device, t0: float) -> None:
        server = self.server
        try:
            cp = parse_cp(frame.cp)
        except HJ212Error as exc:
            server.reject(self, frame.mn, exc.reason, str(exc))
            return
        received_at = server.clock()
        source = Source(device.enterprise, device.outlet.id, device.timezone or server.default_tz)
        backfill = frame.backfill or self._in_backfill(frame, cp, source.timezone)
        result = normalize(frame, cp, source, received_at, backfill=backfill)
        if result.skipped_values:
            server.reject(
                self, frame.mn, "bad_value", f"{result.skipped_values} non-numeric values"
            )
        if frame.is_split:
            server.reassembler.add(frame, cp, t0)
        fut = server.pipeline.submit(result.points)
        if frame.wants_reply:
            self._queue(fut, builder.data_ack(frame), "9014", t0)
        elif fut is not None:
            self._queue(fut, None, "", t0)

    def _in_backfill(self, frame: Frame, cp: CpData, tz: tzinfo) -> bool:
        fill = self.backfills.get(frame.mn)
        if fill is None or fill.cn != frame.cn or cp.data_time is None:
            return False
        try:
            moment = parse_hj212_time(cp.data_time).replace(tzinfo=tz)
        except HJ212Error:
            return False
        return fill.begin <= moment <= fill.end

    def _answer_received(self, frame: Frame) -> None:
        fill = self.backfills.get(frame.mn)
        if frame.cn == "9012" and fill is not None and frame.qn == fill.qn:
            del self.backfills[frame.mn]
            log.info("back-fill finished", mn=frame.mn, cn=fill.cn, cp=frame.cp)
        elif (
            frame.cn == "9011"
            and fill is not None
            and frame.qn == fill.qn
            and "QnRtn=1" not in frame.cp
        ):
            del self.backfills[frame.mn]
            log.warning("back-fill request refused", mn=frame.mn, cp=frame.cp)

    def _time_setting(self, frame: Frame, device: Device) -> bytes:
        tz = device.timezone or self.server.default_tz
        local = self.server.clock().astimezone(tz)
        fields: list[tuple[str, str | int]] = [
            ("QN", builder.new_qn(local)),
            ("ST", frame.st or "32"),
            ("CN", "1012"),
            ("PW", frame.pw or ""),
            ("MN", frame.mn),
            ("Flag", frame.version << 2 | 1),
        ]
        cp = f"SystemTime={local.strftime('%Y%m%d%H%M%S')}"
        return builder.build_frame(builder.build_segment(fields, cp))

    # -- ordered replies -------------------------------------------------------------------

    def _queue(
        self, fut: asyncio.Future[None] | None, reply: bytes | None, cn: str, t0: float
    ) -> None:
        self._replies.append((fut, reply, cn, t0))
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
