"""The HJ 212 TCP server: the platform data loggers talk to. A thin I/O shell over the codec.

Per connection: tolerant framing, MN/PW check, CRC policy, data made durable through the
pipeline, then the reply. Replies leave in the order frames arrived. Bounded: bytes held without
a whole frame, unacknowledged frames and unsent reply bytes per connection (reading pauses past
them), connections per address (in all, and without an accepted frame) and in all. Closed: a
connection whose frame does not complete in time, that sends no complete frame for a while or no
accepted frame at all, or that does not take its replies. The deadlines are queues ordered by
time, so a sweep costs the connections that expire, not all of them. Behind a proxy, the
PROXY protocol header of a connection from `proxy_from` gives it the device's own address.

`connection.py` is the connection (framing, ordered replies, back-pressure); `limits.py` the
counts per address and in all and the deadline queues; this module listens, sweeps, sends
history requests and closes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from gateway import metrics
from gateway.ingest import Pipeline, PowerConverter
from gateway.registry import Registry

from . import builder
from .config import Hj212Config
from .connection import DeviceConnection
from .convert import Source
from .handler import Backfill, FrameHandler
from .limits import ConnectionLimits, due, restart
from .proxy import networks, trusted
from .reassembly import Reassembler

__all__ = ["DeviceConnection", "Hj212Server"]

log = structlog.get_logger("adapters.hj212")


class Hj212Server:
    """Listens for data loggers. `registry` (a Registry, or a callable such as the gateway's
    registry holder) is read on every frame, so a reload takes effect at once."""

    def __init__(
        self,
        config: Hj212Config,
        registry: Registry | Callable[[], Registry],
        pipeline: Pipeline,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        power: PowerConverter | None = None,
    ) -> None:
        self.config = config
        self.handler = FrameHandler(config, registry, pipeline, clock, power)
        self.limits: ConnectionLimits[DeviceConnection] = ConnectionLimits(config)
        self._proxies = networks(config.proxy_from)
        # connections from proxies whose header is not whole yet -> connected at, oldest first
        self.awaiting_header: OrderedDict[DeviceConnection, float] = OrderedDict()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connections(self) -> set[DeviceConnection]:
        return self.limits.connections

    @property
    def by_mn(self) -> dict[str, DeviceConnection]:
        """The connection each device last spoke on."""
        return self.limits.by_mn

    @property
    def unproven(self) -> OrderedDict[DeviceConnection, float]:
        """Connections without an accepted frame yet, oldest first."""
        return self.limits.unproven

    @property
    def per_address(self) -> dict[str, int]:
        """Open connections by remote address."""
        return self.limits.per_address

    def trusts(self, address: str) -> bool:
        """Whether `address` may send a PROXY header (`proxy_from`)."""
        return trusted(address, self._proxies)

    @property
    def registry(self) -> Registry:
        return self.handler.registry

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
            lambda: DeviceConnection(self),
            host or None,
            int(port),
            backlog=4096,
            reuse_port=self.config.reuse_port or None,
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
        closing = [*self.connections, *self.awaiting_header]
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
        self.limits.backfilling.add(conn)
        metrics.REPLIES_SENT.labels(cn=cn).inc()
        return qn

    # -- housekeeping ----------------------------------------------------------------------

    def sweep_interval(self) -> float:
        """Seconds between sweeps: at most half of the shortest deadline, at most 5 s."""
        cfg = self.config
        proxy = cfg.proxy_header_timeout_s if cfg.proxy_protocol != "off" else 10.0
        return min(
            5.0,
            proxy / 2,
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
        for conn, _ in due(self.awaiting_header, now - cfg.proxy_header_timeout_s):
            conn.header_overdue()
        for conn, _ in due(self.limits.unproven, now - cfg.first_frame_timeout_s):
            conn.close("no_frame")
        for conn, _ in due(self.limits.write_blocked, now - cfg.write_blocked_timeout_s):
            conn.close("write_blocked")
        for conn, _ in due(self.limits.idle, now - cfg.idle_timeout_s):
            if conn.inflight_paused:
                restart(self.limits.idle, conn, now)
            else:
                conn.close("idle")
        slow = now - cfg.frame_timeout_s
        stale = now - min(cfg.frame_timeout_s, cfg.partial_frame_timeout_s)
        for conn, since in due(self.limits.partial, stale):
            if conn.inflight_paused:
                restart(self.limits.partial, conn, now)
            elif since < slow:
                conn.close("slow_frame")
            else:  # partial_frame_timeout_s is the shorter: drop the bytes, keep the device
                del self.limits.partial[conn]
                self.handler.reject(conn, None, "partial_expired", f"{conn.framer.discard()} bytes")
        for conn in list(self.limits.backfilling):
            for mn, fill in list(conn.backfills.items()):
                if now > fill.deadline:
                    del conn.backfills[mn]
            if not conn.backfills:
                self.limits.backfilling.discard(conn)
        self.handler.expire_uploads(now)
