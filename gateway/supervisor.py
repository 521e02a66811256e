"""Wires the gateway together and runs it: spool, forwarder, sink, adapters, metrics.

Shutdown (SIGTERM / SIGINT / `stop()`): stop accepting, let in-flight frames become durable
and be acknowledged, deliver what InfluxDB will take within the timeout, fsync, exit.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import make_asgi_app

from adapters.hj212.server import Hj212Server
from adapters.mqtt.adapter import MqttAdapter
from gateway.influx.sink import Sink, WriteError
from gateway.influx.v1 import InfluxV1Sink
from gateway.influx.v2 import InfluxV2Sink
from gateway.ingest.forwarder import Forwarder
from gateway.ingest.pipeline import Pipeline
from gateway.ingest.power import PowerConverter
from gateway.ingest.spool import Spool, SpoolClosed, SpoolFull
from gateway.status.completeness import DeviceStatusPoints
from gateway.status.enterprises import RuleStatus

from .anomalies.publish import InfluxPublisher, MqttPublisher
from .anomalies.store import AnomalyStore
from .api import create_app
from .api.server import ApiServer
from .config import LoadedConfig
from .errors import ConfigError
from .model import Point
from .regime import Alert, Regime, period_alerts
from .registry import Registry
from .rules.auth import RefusedDevices
from .rules.curtailment import CurtailmentExceeded
from .rules.data_gap import DataGap
from .rules.emission_shutdown import EmissionDuringShutdown
from .rules.engine import RuleEngine
from .rules.offline import DeviceOffline
from .rules.over_limit import OverLimit
from .rules.shutdown import ProductionDuringShutdown
from .rules.suspicious import SuspiciousData
from .rules.treatment import TreatmentNotRunning
from .rules.vehicles import BannedVehicleEntry

log = structlog.get_logger("gateway")


def make_sink(loaded: LoadedConfig) -> Sink:
    influx = loaded.config.influx
    if influx.version == 1:
        return InfluxV1Sink(
            influx.url,
            influx.database,
            retention_policy=influx.retention_policy,
            username=influx.username,
            password=influx.secret(influx.password_env),
            gzip_level=influx.gzip_level,
            timeout_s=influx.timeout_s,
            create_database=influx.create_database,
        )
    return InfluxV2Sink(
        influx.url,
        org=influx.org or "",
        bucket=influx.bucket,
        token=influx.secret(influx.token_env) or "",
        gzip=influx.gzip_level > 0,
        timeout_s=influx.timeout_s,
    )


class Gateway:
    """The running daemon. `start()` returns once every listener is up."""

    def __init__(self, loaded: LoadedConfig, *, sink: Sink | None = None) -> None:
        self.loaded = loaded
        cfg = loaded.config
        self.spool = Spool(
            loaded.data_dir / "spool",
            max_bytes=cfg.spool.max_bytes,
            segment_bytes=cfg.spool.segment_bytes,
        )
        self.sink = sink or make_sink(loaded)
        self.pipeline = Pipeline(self.spool)
        self.forwarder = Forwarder(
            self.spool,
            self.sink,
            batch_lines=cfg.influx.batch_lines,
            flush_interval_s=cfg.influx.flush_interval_s,
            retry_max_s=cfg.influx.retry_max_s,
            poison_path=loaded.data_dir / "poison.lp",
        )
        self.power = PowerConverter(loaded.registry)
        self.hj212 = Hj212Server(cfg.hj212, loaded.registry, self.pipeline, power=self.power)
        self.mqtt = (
            MqttAdapter(cfg.mqtt, loaded.registry, self.pipeline, self.hj212.handler, self.power)
            if cfg.mqtt.enabled
            else None
        )
        self.anomalies: AnomalyStore | None = None  # opened by start(), in the data folder
        self.regime: Regime | None = None
        self.api: ApiServer | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._calendar_cache: tuple[Registry | None, list[Alert]] = (None, [])
        self._ready = False
        self.rules: RuleEngine | None = None
        self._forward_task: asyncio.Task[None] | None = None
        self._create_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def registry(self) -> Registry:
        """The registry in force (rules read it at each use, so a reload takes effect)."""
        return self.hj212.registry

    def _calendar(self) -> Sequence[Alert]:
        """The registry's calendar control periods as alerts (cached per registry)."""
        registry = self.registry()
        if self._calendar_cache[0] is not registry:
            alerts = period_alerts(registry.data.control_periods)
            self._calendar_cache = (registry, alerts)
        return self._calendar_cache[1]

    def reload_registry(self) -> list[str]:
        """Load the registry file again; on problems keep the one in force and return them."""
        path = self.loaded.path.parent / self.loaded.config.gateway.registry
        try:
            registry = Registry.load(path)
        except ConfigError as exc:
            log.error("registry reload refused; the registry in force stays", problems=exc.problems)
            return exc.problems
        if not registry.data.enterprises and self.loaded.registry.data.enterprises:
            problem = (
                f"{path}: no enterprises (an empty or truncated file?); the registry in force stays"
            )
            log.error("registry reload refused; the registry in force stays", problems=[problem])
            return [problem]
        self.loaded.registry = registry
        self.hj212.registry = registry
        self.power.registry = registry
        if self.mqtt is not None:
            self.mqtt.registry = registry
        devices = sum(1 for _ in registry.devices())
        log.info("registry reloaded", enterprises=len(registry.data.enterprises), devices=devices)
        return []

    def _request_backfill(self, mn: str, cn: str, begin: datetime, end: datetime) -> bool:
        """Ask a connected HJ 212 device for history (the data_gap rule's side effect)."""
        return self.hj212.request_history(mn, cn, begin, end) is not None

    def _start_rules(self) -> None:
        if not self.loaded.config.rules.enabled:
            return
        self.anomalies = AnomalyStore(self.loaded.data_dir / "anomalies.sqlite")
        self.regime = Regime(self.loaded.data_dir / "regime.sqlite")
        self.regime.calendar = self._calendar
        self.offline = DeviceOffline(self.registry, datetime.now(UTC))
        self.gaps = DataGap(
            self.registry,
            self._request_backfill,
            due_after_s=self.loaded.config.rules.hourly_due_after_s,
        )
        self.daily = DeviceStatusPoints(self.registry, self.offline, self.gaps)
        self.vehicles = BannedVehicleEntry(self.registry, self.regime)
        self.treatment = TreatmentNotRunning(self.registry)
        self.rules = RuleEngine(
            self.anomalies,
            [
                self.offline,
                self.gaps,
                OverLimit(self.registry),
                self.treatment,
                ProductionDuringShutdown(self.registry, self.regime),
                EmissionDuringShutdown(self.registry, self.regime),
                SuspiciousData(self.registry),
                CurtailmentExceeded(self.registry, self.regime),
                self.vehicles,
                RefusedDevices(),
            ],
            tick_s=self.loaded.config.rules.tick_s,
        )
        self.anomalies.add_listener(InfluxPublisher(self.pipeline))
        if self.mqtt is not None:
            prefix = self.loaded.config.mqtt.topic_prefix
            self.anomalies.add_listener(MqttPublisher(self.mqtt.publish, prefix))
        self.pipeline.add_listener(self.rules.on_points)
        self.pipeline.add_listener(self._write_allowed)
        self.hj212.handler.on_event = self.rules.on_device_event
        self.rules.start()
        self._status_task = asyncio.create_task(self._write_status(), name="device-status")

    def _write_allowed(self, _points: Sequence[Point]) -> None:
        """`vehicle_passage.allowed`: each entry's verdict under the control level in force."""
        verdicts = self.vehicles.take_verdicts()  # judged once, by the rule, just before
        if verdicts:
            try:
                self.pipeline.submit(verdicts)
            except (SpoolFull, SpoolClosed) as exc:  # the anomaly is what counts
                log.warning("allowed verdicts not written", error=str(exc))

    async def _write_status(self) -> None:
        """`device_status` points (online, today's completeness) every status interval."""
        while True:
            await asyncio.sleep(self.loaded.config.rules.status_interval_s)
            try:
                self.pipeline.submit(self.daily.points(datetime.now(UTC)))
            except (SpoolFull, SpoolClosed) as exc:  # the next interval tries again
                log.warning("device status not written this interval", error=str(exc))

    async def start(self) -> None:
        self.loaded.data_dir.mkdir(parents=True, exist_ok=True)
        await self.spool.open()
        self._start_rules()
        await self.sink.start()
        if isinstance(self.sink, InfluxV1Sink) and self.sink.create_database:
            # in the background: a hanging InfluxDB must not delay the listeners (the sink
            # creates the database on its first write too)
            self._create_task = asyncio.create_task(self._create_database(), name="create-db")
        self._forward_task = asyncio.create_task(self.forwarder.run(), name="forwarder")
        if self.loaded.config.hj212.enabled:
            await self.hj212.start()
        if self.mqtt is not None:
            self.mqtt.start()
        await self._start_api()
        self._ready = True

    async def _create_database(self) -> None:
        assert isinstance(self.sink, InfluxV1Sink)
        try:
            await self.sink.ensure_database()
        except WriteError as exc:
            log.warning("could not create the database now; data is spooled", error=str(exc))

    async def _start_api(self) -> None:
        cfg = self.loaded.config
        if not cfg.api.enabled or self.anomalies is None or self.regime is None:
            return
        app = create_app(
            store=self.anomalies,
            regime=self.regime,
            registry=self.registry,
            status=RuleStatus(self.registry, self.offline, self.treatment, self.daily),
            tokens=cfg.api.tokens(),
            ready=lambda: self._ready,
            metrics_app=make_asgi_app(),
            reload_registry=self.reload_registry,
            influx=cfg.influx,
        )
        self.api = ApiServer(app, cfg.api.listen, graceful_timeout_s=2)
        await self.api.start()
        log.info("API listening", listen=f"{cfg.api.listen.rpartition(':')[0]}:{self.api.port}")

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Stop within `shutdown_timeout_s` at most: each step gets its share of what is left,
        and a tenth stays for fsyncing the spool and closing."""
        timeout = self.loaded.config.gateway.shutdown_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * 0.9
        log.info("shutting down", timeout_s=timeout)
        self._ready = False

        def left(share: float) -> float:
            return max(0.0, min(share, deadline - loop.time()))

        if self.api is not None:
            await _within(self.api.close(left(timeout / 8)), left(timeout / 8) + 0.1)
        if self.mqtt is not None:
            await _within(self.mqtt.close(left(timeout / 8)), left(timeout / 8) + 0.1)
        await _within(self.hj212.close(left(timeout / 4)), left(timeout / 4) + 0.1)
        if self._forward_task is not None:
            await _within(self.forwarder.drain(left(timeout), self._forward_task), left(timeout))
            self._forward_task.cancel()
            try:
                await self._forward_task
            except asyncio.CancelledError:
                pass
            except Exception:  # its failure must not skip the spool's fsync below
                log.exception("forwarder failed")
        for task in (self._status_task, self._create_task):
            if task is not None:
                task.cancel()
        if self.rules is not None:
            await self.rules.close()
        await self.spool.close()
        await _within(self.sink.close(), max(0.1, timeout * 0.05))
        if self.anomalies is not None:
            self.anomalies.close()
        if self.regime is not None:
            self.regime.close()
        log.info("stopped", spool_depth_bytes=self.spool.depth_bytes)


async def _within(step: Coroutine[Any, Any, None], seconds: float) -> None:
    """Run a shutdown step for at most `seconds`; past that it is cancelled."""
    try:
        await asyncio.wait_for(step, max(seconds, 0.01))
    except TimeoutError:
        log.warning("shutdown step cut short", step=getattr(step, "__qualname__", "?"))


async def run(loaded: LoadedConfig) -> None:
    """Run until SIGTERM or SIGINT."""
    gateway = Gateway(loaded)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stop)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload_registry)
    await gateway.start()
    metrics_cfg = loaded.config.metrics
    if metrics_cfg.enabled:
        from prometheus_client import start_http_server

        host, _, port = metrics_cfg.listen.rpartition(":")
        start_http_server(int(port), addr=host or "127.0.0.1")
    log.info("gateway running", config=str(loaded.path), data_dir=str(loaded.data_dir))
    try:
        await gateway.wait()
    finally:
        await gateway.shutdown()
