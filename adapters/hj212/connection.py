"""One HJ 212 TCP connection: framing, frames handled in order, replies in arrival order once
durable, and back-pressure both ways.

Reading pauses while `max_inflight_per_connection` frames wait for their acknowledgement, while
the transport holds `write_buffer_high_bytes` unsent, or while frames read before the pause are
held; past `write_buffer_max_bytes` unsent the connection is closed. The counts and deadlines it
is held to are the server's `ConnectionLimits`.

Behind a proxy (`proxy_protocol`), a connection from one of `proxy_from` is counted only once
its PROXY header is whole: from then on its `address` and `peer` are the device's, as the header
names them, for the limits, logs, the frame archive and the anomalies.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import OrderedDict, deque
from typing import Literal, Protocol, cast

import structlog

from gateway import metrics
from gateway.ingest import SpoolClosed, SpoolFull

from .config import Hj212Config
from .frame import Frame
from .framer import Framer
from .handler import ADAPTER, Backfill, FrameHandler, Reply
from .limits import ConnectionLimits, restart
from .proxy import HeaderReader, ProxyError, ProxyHeader

log = structlog.get_logger("adapters.hj212")
_SERIALS = itertools.count(1)  # connection serials since start (the frame archive's `conn`)


class Host(Protocol):
    """The server a connection belongs to, as the connection sees it."""

    @property
    def config(self) -> Hj212Config: ...

    @property
    def handler(self) -> FrameHandler: ...

    @property
    def limits(self) -> ConnectionLimits[DeviceConnection]: ...

    @property
    def awaiting_header(self) -> OrderedDict[DeviceConnection, float]:
        """Connections from proxies whose PROXY header is not whole yet, oldest first."""

    def trusts(self, address: str) -> bool:
        """Whether `address` may send a PROXY header (`proxy_from`)."""


_QUIET_CLOSES = frozenset({"idle", "shutdown"})
ProxyRefusal = Literal["missing", "malformed", "unsupported", "untrusted", "timeout"]


class DeviceConnection(asyncio.Protocol):
    """One TCP connection from a data logger (possibly relaying several MNs)."""

    __slots__ = (
        "_header",
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
        "serial",
        "server",
        "st_by_mn",
        "transport",
        "version",
        "write_paused",
    )

    def __init__(self, server: Host) -> None:
        self.server = server
        self.serial = next(_SERIALS)
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
        self._header: HeaderReader | None = None  # waiting for the PROXY header

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
        mode = self.server.config.proxy_protocol
        if mode != "off":
            if self.server.trusts(self.address):
                self._header = HeaderReader()
                self.server.awaiting_header[self] = time.monotonic()
                return
            if mode == "required":
                self.refuse_proxy("untrusted", "the peer is not one of proxy_from")
                return
        self.server.limits.admit(self, time.monotonic())

    def refuse_proxy(self, reason: ProxyRefusal, detail: str) -> None:
        """Close a connection over its PROXY header (it was never counted)."""
        self._header = None
        self.server.awaiting_header.pop(self, None)
        metrics.PROXY_REJECTED.labels(reason=reason).inc()
        suppressed = self.server.handler.limiter.allow(
            ("proxy", self.address, reason), time.monotonic()
        )
        if suppressed >= 0:
            log.warning(
                "PROXY header refused",
                peer=self.peer,
                reason=reason,
                detail=detail,
                suppressed_since_last=suppressed,
            )
        if self.transport is not None:
            self.transport.abort()
        self.transport = None

    def header_overdue(self) -> None:
        """No whole header within `proxy_header_timeout_s`: refused when one is required;
        otherwise the connection is a device's own and what it sent is its data."""
        reader = self._header
        if reader is None:
            return
        if self.server.config.proxy_protocol == "required":
            self.refuse_proxy("timeout", f"{len(reader.buffered)} bytes without a whole header")
            return
        self._end_header(None)
        if reader.buffered:
            self.data_received(reader.buffered)

    def _take_header(self, reader: HeaderReader, data: bytes) -> bytes:
        """Feed the header; once it is whole (or, when optional, surely absent) count the
        connection in under the address it names; return the bytes that follow it."""
        try:
            got = reader.feed(data)
        except ProxyError as exc:
            if exc.reason == "missing" and self.server.config.proxy_protocol == "optional":
                self._end_header(None)  # a device's own connection: all of it is data
                return reader.buffered
            self.refuse_proxy(exc.reason, str(exc))
            return b""
        if got is None:
            return b""
        header, rest = got
        metrics.PROXY_HEADERS.labels(version=str(header.version)).inc()
        self._end_header(header)
        return rest

    def _end_header(self, header: ProxyHeader | None) -> None:
        self._header = None
        self.server.awaiting_header.pop(self, None)
        if header is not None and header.source is not None:
            host, port = header.source
            self.address = host
            self.peer = f"{host}:{port}"
        self.server.limits.admit(self, time.monotonic())

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
        if self._header is not None:
            self._header = None
            self.server.awaiting_header.pop(self, None)
        if self.attached:  # the device hung up: what it sent whole is still data
            now = time.monotonic()
            held, self._held = self._held, None
            for raw, t0 in held or ():
                self._handle(raw, t0)
            for raw in self.framer.flush():  # a last frame without its trailer, too
                self._handle(raw, now)
            self.server.limits.forget(self)

    def data_received(self, data: bytes) -> None:
        if self._header is not None:
            data = self._take_header(self._header, data)
        if not self.attached or not data:
            return
        now = time.monotonic()
        limits = self.server.limits
        framer = self.framer
        junk_before = framer.stats.junk_bytes
        frames = framer.feed(data)
        junk = framer.stats.junk_bytes - junk_before
        if junk:
            metrics.JUNK_BYTES.inc(junk)
        if frames:
            restart(limits.idle, self, now)
        if framer.pending > 1:  # a frame has begun (a lone '#' may be junk)
            if frames or self not in limits.partial:
                restart(limits.partial, self, now)
        else:
            limits.partial.pop(self, None)
        if frames:
            self._run(frames, now)

    def pause_writing(self) -> None:
        """The transport holds `write_buffer_high_bytes` unsent: stop reading the device."""
        if self.attached and not self.write_paused:
            self.write_paused = True
            self.server.limits.write_blocked[self] = time.monotonic()
            self._apply_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.server.limits.write_blocked.pop(self, None)
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
            self.server.limits.forget(self)  # going already: it no longer counts
            return
        metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
        self.server.limits.forget(self)
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
        limits = self.server.limits
        restart(limits.idle, self, now)
        if self in limits.partial:
            restart(limits.partial, self, now)

    def _handle(self, raw: bytes, t0: float) -> None:
        try:
            replies = self.server.handler.process(raw, self) or ()
        except (SpoolFull, SpoolClosed) as exc:  # not stored: no answer, the device resends
            reason = getattr(exc, "reason", "spool_full")  # or archive_full
            self.server.handler.reject(self, None, reason, str(exc))
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
            self.server.limits.prove(self)
        self.server.limits.by_mn[frame.mn] = self
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
