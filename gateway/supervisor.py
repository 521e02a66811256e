"""Wires the gateway together and runs it: spool, forwarder, sink, adapters, metrics.

Shutdown (SIGTERM / SIGINT / `stop()`): stop accepting, let in-flight frames become durable
and be acknowledged, deliver what InfluxDB will take within the timeout, fsync, exit.

Background tasks (the forwarder, the MQTT adapter, the rule ticker, the device-status writer)
are supervised: one that fails, or ends while the gateway runs, is logged and shuts the gateway
down, and `run()` raises `GatewayFailed` (the process exits non-zero).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from prometheus_client import make_asgi_app

from adapters.hj212 import builder as hj212_builder
from adapters.hj212.cp import parse_cp, parse_hj212_time
from adapters.hj212.errors import HJ212Error
from adapters.hj212.frame import parse_frame
from adapters.hj212.framer import Framer
from adapters.hj212.server import Hj212Server
from adapters.mqtt.adapter import MqttAdapter
from gateway import metrics
from gateway.influx.factory import make_sink
from gateway.influx.sink import Sink, WriteError
from gateway.influx.v1 import InfluxV1Sink
from gateway.influx.watched import WatchedSink
from gateway.ingest.forwarder import Forwarder
from gateway.ingest.pipeline import Pipeline
from gateway.ingest.power import PowerConverter
from gateway.ingest.spool import Spool, SpoolClosed, SpoolFull
from gateway.status.completeness import DeviceStatusPoints
from gateway.status.enterprises import RuleStatus

from .accounts import Accounts
from .anomalies.publish import InfluxPublisher, MqttPublisher, Publishers
from .anomalies.store import AnomalyStore
from .api import create_app
from .api.health import NotReady, health_app
from .api.server import ApiServer
from .api.status import RegistryStatus, StatusProvider
from .archive import FrameArchive
from .audit import AuditLog, accounts_recorder
from .cases.backend import CaseBackend
from .cases.store import CaseStore, policy
from .cluster.commands import CommandListener, CommandSender
from .cluster.log import JetStreamLog
from .cluster.partitions import RulesPublisher
from .cluster.rules_worker import RuleWorker
from .cluster.writer import StreamWriter
from .config import LoadedConfig
from .forward import Codec, ForwardService
from .model import Point
from .notify.outbox import OutboxBackend
from .notify.service import Notifier
from .plan_check import problems_of
from .regime import Alert, Regime, period_alerts
from .registry import Registry
from .rules import catalog
from .rules.base import Rule
from .rules.data_gap import DataGap
from .rules.engine import RuleEngine
from .rules.offline import DeviceOffline
from .rules.treatment import TreatmentNotRunning
from .rules.vehicles import BannedVehicleEntry

if TYPE_CHECKING:
    from .cluster.pg_status import PgStatus

log = structlog.get_logger("gateway")


def hj212_codec() -> Codec:
    """The HJ 212 codec forwarding speaks upstream with (gateway/forward/codec.py)."""
    return Codec(
        parse=parse_frame,
        splitter=Framer,
        frame=hj212_builder.build_frame,
        segment=hj212_builder.build_segment,
        encrypted_frame=hj212_builder.build_encrypted_frame,
        cp_params=lambda cp: parse_cp(cp).params,
        parse_time=parse_hj212_time,
        error=HJ212Error,
    )


class GatewayFailed(RuntimeError):
    """A background task failed (or ended) while the gateway ran; the gateway stopped."""


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
        self.sink = sink or make_sink(cfg.influx)
        self.writes = WatchedSink(self.sink)
        # cluster mode: the replicated log in the spool's place, writers in the forwarder's
        cluster = cfg.cluster
        self.log: JetStreamLog | None = None
        self.stream_writer: StreamWriter | None = None
        self._writer_task: asyncio.Task[None] | None = None
        if cluster.ingest or cluster.rules_worker:  # a worker's anomaly points go there too
            self.log = JetStreamLog(cluster, node=cluster.node_name)
        # rule workers: ingestion publishes what the rules judge to the rules stream
        self.rules_publisher: RulesPublisher | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        if cluster.ingest and cluster.rule_workers:
            self.rules_publisher = RulesPublisher(cluster, node=cluster.node_name)
        self.rule_worker: RuleWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        # device commands (back-fill): workers ask, the process holding the device sends
        self.commands: CommandSender | None = None
        self.command_listener: CommandListener | None = None
        if cluster.writer:
            self.stream_writer = StreamWriter(
                cluster,
                self.writes,
                node=cluster.node_name,
                poison_path=loaded.data_dir / "poison.lp",
                retry_max_s=cfg.influx.retry_max_s,
            )
        self.pipeline = Pipeline(self.log if self.log is not None else self.spool)
        self.forwarder = Forwarder(
            self.spool,
            self.writes,
            batch_lines=cfg.influx.batch_lines,
            flush_interval_s=cfg.influx.flush_interval_s,
            retry_max_s=cfg.influx.retry_max_s,
            poison_path=loaded.data_dir / "poison.lp",
        )
        # the one holder of the registry in force: every user reads it at each use
        self.registry_holder = loaded.registry_holder
        holder = self.registry_holder
        # with rule workers a meter's readings meet only there: they add its interval energy
        self.power = PowerConverter(holder, derive_energy=self.rules_publisher is None)
        self.hj212 = Hj212Server(cfg.hj212, holder, self.pipeline, power=self.power)
        if cluster.ingest and cluster.rule_workers and cfg.hj212.enabled:
            self.command_listener = CommandListener(
                cluster, self.hj212.request_history, node=cluster.node_name
            )
        # the raw frame archive: every HJ 212 frame's record is fsynced before the spool writes
        self.archive: FrameArchive | None = None
        if cfg.archive.enabled:
            self.archive = FrameArchive(
                loaded.data_dir / "archive",
                max_bytes=cfg.archive.max_bytes,
                retention_days=cfg.archive.retention_days,
                queue_bytes=cfg.archive.queue_bytes,
            )
            self.hj212.handler.archive = self.archive
            self.spool.before_write = self.archive.durable
            if self.log is not None:
                self.log.before_write = self.archive.durable
        # upstream platforms ([[forward]], which needs the archive): gateway/forward
        self.forward: ForwardService | None = None
        if cfg.forward and self.archive is not None:
            self.forward = ForwardService(
                cfg.forward,
                self.archive.directory,
                loaded.data_dir / "forward",
                holder,
                ZoneInfo(cfg.hj212.timezone),
                hj212_codec(),
            )
        self.mqtt = (
            MqttAdapter(cfg.mqtt, holder, self.pipeline, self.hj212.handler, self.power)
            if cfg.mqtt.enabled and (cluster.ingest or not cluster.enabled)
            else None
        )
        self.publishers = Publishers()  # the anomaly store's listener: InfluxDB, MQTT
        self.anomalies: AnomalyStore | None = None  # opened by start(), in the data folder
        self.regime: Regime | None = None
        self.audit: AuditLog | None = None  # who changed what, for the API's admins
        self.cases: CaseStore | None = None  # the handling of anomalies that need action
        self.notify: Notifier | None = None  # notifications: outbox, sender, escalation
        self._notify_task: asyncio.Task[None] | None = None
        self.api: ApiServer | None = None
        self._pg_status: PgStatus | None = None  # an API node's device status
        self._status_task: asyncio.Task[None] | None = None
        self._calendar_cache: tuple[Registry | None, list[Alert]] = (None, [])
        self._ready = False
        self.rules: RuleEngine | None = None
        self._forward_task: asyncio.Task[None] | None = None
        self._create_task: asyncio.Task[None] | None = None
        self._mqtt_task: asyncio.Task[None] | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._tasks: dict[asyncio.Task[None], bool] = {}  # supervised -> may end on its own
        self._stopping = False
        self.failure: GatewayFailed | None = None
        self._stop = asyncio.Event()
        self._check_plans()

    def _check_plans(self) -> None:
        """Log, once per registry loaded, each plan measure no device can verify."""
        for problem in problems_of(self.registry()):
            log.warning("plan measure not verifiable", **problem.as_dict())

    def registry(self) -> Registry:
        """The registry in force (rules read it at each use, so a reload takes effect)."""
        return self.registry_holder.current

    def _calendar(self) -> Sequence[Alert]:
        """The registry's calendar control periods as alerts (cached per registry)."""
        registry = self.registry()
        if self._calendar_cache[0] is not registry:
            alerts = period_alerts(registry.data.control_periods)
            self._calendar_cache = (registry, alerts)
        return self._calendar_cache[1]

    def reload_registry(self) -> list[str]:
        """Load the registry file again; on problems keep the one in force and return them."""
        problems = self.registry_holder.reload(
            self.loaded.path.parent / self.loaded.config.gateway.registry
        )
        if not problems:
            self._check_plans()
        return problems

    def reload_on_signal(self) -> None:
        """SIGHUP: reload the registry, on the audit record as the operator's signal."""
        before = self.registry().counts()
        problems = self.reload_registry()
        if self.audit is not None:
            refused = {"refused": True, "problems": problems} if problems else {}
            self.audit.record(
                actor="operator (SIGHUP)",
                actor_role="system",
                action="registry.reload",
                target=self.loaded.config.gateway.registry,
                before=before,
                after={**self.registry().counts(), **refused},
            )

    def _accounts(self) -> Accounts:
        """The API's accounts; a change of the accounts file goes on the audit record."""
        accounts = Accounts(self.loaded.accounts_path, self.loaded.config.api.tokens())
        if self.audit is not None:
            accounts.on_reload = accounts_recorder(self.audit, str(self.loaded.accounts_path))
        return accounts

    def _request_backfill(self, mn: str, cn: str, begin: datetime, end: datetime) -> bool:
        """Ask a connected HJ 212 device for history (the data_gap rule's side effect); a
        rule worker asks through the ingestion processes (cluster/commands.py)."""
        if self.commands is not None:
            return self.commands.request_backfill(mn, cn, begin, end)
        return self.hj212.request_history(mn, cn, begin, end) is not None

    def _start_rules(self) -> None:
        cluster = self.loaded.config.cluster
        if self.rules_publisher is not None:  # the rule workers judge this node's traffic
            # a device is acknowledged once the rules stream holds its points too
            self.pipeline.hold_acks_for(self.rules_publisher.on_points)
            self.hj212.handler.on_event = self.rules_publisher.on_device_event
            if self.loaded.config.api.enabled and cluster.postgres_dsn:
                self._open_stores()  # an API node: it serves what the workers record
            return
        if not self.loaded.config.rules.enabled or (
            cluster.enabled and not (cluster.ingest or cluster.rules_worker)
        ):
            return
        self._open_stores()
        assert self.anomalies is not None
        if cluster.rules_worker:
            self._start_rule_worker(self.anomalies)
            return
        rules = self._build_rules()
        self.offline = catalog.find(rules, DeviceOffline)
        self.gaps = catalog.find(rules, DataGap)
        self.daily = DeviceStatusPoints(self.registry, self.offline, self.gaps)
        self.vehicles = catalog.find(rules, BannedVehicleEntry)
        self.treatment = catalog.find(rules, TreatmentNotRunning)
        self.rules = RuleEngine(self.anomalies, rules, tick_s=self.loaded.config.rules.tick_s)
        self._listen_to_anomalies(self.anomalies)
        self.pipeline.add_listener(self.rules.on_points)
        self.pipeline.add_listener(self._write_allowed)
        self.hj212.handler.on_event = self.rules.on_device_event
        self._tick_task = self._supervise(self._tick_rules(self.rules), "rule-ticker")
        self._status_task = self._supervise(self._write_status(), "device-status")

    def _open_stores(self) -> None:
        """The anomaly store, the regime, the audit log and cases: in PostgreSQL when the
        nodes share them (`postgres_dsn`), else in the data folder."""
        cluster = self.loaded.config.cluster
        if cluster.postgres_dsn:  # shared by the nodes; the rest stays in the data folder
            from .cluster.pg_anomalies import PgAnomalies
            from .cluster.pg_audit import PgAudit
            from .cluster.pg_regime import PgRegime

            self.anomalies = AnomalyStore(PgAnomalies(cluster.postgres_dsn))
            self.regime = Regime(PgRegime(cluster.postgres_dsn))
            self.audit = AuditLog(PgAudit(cluster.postgres_dsn))
        else:
            self.anomalies = AnomalyStore(self.loaded.data_dir / "anomalies.sqlite")
            self.regime = Regime(self.loaded.data_dir / "regime.sqlite")
            self.audit = AuditLog(self.loaded.data_dir / "audit.sqlite")
        self.regime.calendar = self._calendar
        self.regime.within = lambda region, scope: self.registry().regions.within(region, scope)
        cases = self.loaded.config.cases
        if cases.enabled:
            where: Path | CaseBackend = self.loaded.data_dir / "cases.sqlite"
            if cluster.postgres_dsn:
                from .cluster.pg_cases import PgCases

                where = PgCases(cluster.postgres_dsn)
            self.cases = CaseStore(
                where, policy(cases.warning_types), join_same_day=cases.join_same_day
            )

    def _listen_to_anomalies(self, store: AnomalyStore) -> None:
        """What follows each anomaly event: InfluxDB and MQTT, cases, notifications."""
        self.publishers.add("influx", InfluxPublisher(self.pipeline, self.registry))
        if self.mqtt is not None:
            prefix = self.loaded.config.mqtt.topic_prefix
            self.publishers.add("mqtt", MqttPublisher(self.mqtt.publish, prefix, self.registry))
        store.add_listener(self.publishers)
        if self.cases is not None:
            store.add_listener(self.cases.on_anomaly)
        notify = self.loaded.config.notify  # notifications: only with channels to send to
        if notify.enabled and notify.channels:
            dsn = self.loaded.config.cluster.postgres_dsn
            where: Path | OutboxBackend = self.loaded.data_dir / "notify.sqlite"
            if dsn:  # one outbox for every recording node: each notice sent by one of them
                from .cluster.pg_outbox import PgOutbox

                where = PgOutbox(dsn, lease_s=max(60.0, 2 * notify.timeout_s))
            self.notify = Notifier(notify, where, self.registry, cases=self.cases, anomalies=store)
            store.add_listener(self.notify.on_anomaly)
            self._notify_task = self._supervise(self.notify.run(), "notify")

    def _build_rules(self) -> list[Rule]:
        assert self.regime is not None  # opened with the anomaly store
        return catalog.build(
            catalog.Context(
                self.registry,
                self.regime,
                datetime.now(UTC),
                self._request_backfill,
                self.loaded.config.rules.hourly_due_after_s,
            )
        )

    def _start_rule_worker(self, store: AnomalyStore) -> None:
        """Rules over the partitions this worker owns, an engine each (no device here:
        back-fill requests go to the ingestion processes). Verdicts and device_status go
        through the pipeline, as `_write_allowed` and `_write_status` send them; the status
        snapshots of its enterprises to PostgreSQL, for the API nodes."""
        from .cluster.pg_status import StatusSnapshots
        from .cluster.rules_worker import StatusOutput

        self._listen_to_anomalies(store)
        cluster = self.loaded.config.cluster
        self.commands = CommandSender(
            cluster,
            node=cluster.node_name,
            replaying=lambda: self.rule_worker is not None and self.rule_worker.replaying,
        )
        tick_s = self.loaded.config.rules.tick_s

        def engine(partition_store: AnomalyStore) -> RuleEngine:
            return RuleEngine(partition_store, self._build_rules(), tick_s=tick_s)

        status = StatusOutput(
            self.registry,
            self.pipeline.submit,
            StatusSnapshots(cluster.postgres_dsn) if cluster.postgres_dsn else None,
            self.loaded.config.rules.status_interval_s,
        )
        self.rule_worker = RuleWorker(
            cluster, store, engine, node=cluster.node_name, tick_s=tick_s, status=status
        )

    async def _tick_rules(self, rules: RuleEngine) -> None:
        """The wall-clock rules (silence, due records) every `tick_s`."""
        while True:
            await asyncio.sleep(rules.tick_s)
            rules.tick()

    def _supervise(
        self, work: Coroutine[Any, Any, None], name: str, *, may_end: bool = False
    ) -> asyncio.Task[None]:
        """Run `work` as a task whose failure (or end, unless `may_end`) stops the gateway."""
        task = asyncio.create_task(work, name=name)
        self._tasks[task] = may_end
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        may_end = self._tasks.pop(task, True)
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        if exc is None and may_end:
            return
        name = task.get_name()
        metrics.ERRORS_TOTAL.labels(stage=f"task_{name}").inc()
        if exc is None:
            log.error("background task ended; stopping the gateway", task=name)
            failure = GatewayFailed(f"background task {name} ended")
        else:
            log.error("background task failed; stopping the gateway", task=name, exc_info=exc)
            failure = GatewayFailed(f"background task {name} failed: {exc!r}")
            failure.__cause__ = exc
        if self.failure is None:
            self.failure = failure
        self._stop.set()

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
        cluster = self.loaded.config.cluster
        if not cluster.enabled:
            await self.spool.open()
        if self.log is not None:
            await self.log.open()
        if self.archive is not None:
            await self.archive.open()
        if self.forward is not None:  # after the archive it reads
            await self.forward.start()
        self._start_rules()
        if self.rules_publisher is not None:
            await self.rules_publisher.open()
            self._publisher_task = self._supervise(self.rules_publisher.run(), "rules-publisher")
        if self.commands is not None:  # before the engines that ask through it
            await self.commands.open()
        if self.rule_worker is not None:
            await self.rule_worker.open()
            self._worker_task = self._supervise(self.rule_worker.run(), "rule-worker")
        await self.sink.start()
        if isinstance(self.sink, InfluxV1Sink) and self.sink.create_database:
            # in the background: a hanging InfluxDB must not delay the listeners (the sink
            # creates the database on its first write too)
            self._create_task = self._supervise(self._create_database(), "create-db", may_end=True)
        if not cluster.enabled:
            self._forward_task = self._supervise(self.forwarder.run(), "forwarder")
        if self.stream_writer is not None:
            await self.stream_writer.open()
            self._writer_task = self._supervise(self.stream_writer.run(), "stream-writer")
        if self.loaded.config.hj212.enabled and (cluster.ingest or not cluster.enabled):
            await self.hj212.start()
        if self.command_listener is not None:
            await self.command_listener.open()
        if self.mqtt is not None:
            # run here rather than by `mqtt.start()`, so that its failure is seen
            self._mqtt_task = self._supervise(self.mqtt.run(), "mqtt-adapter")
        await self._start_api()
        self._ready = True

    def readiness(self) -> list[NotReady]:
        """What `/readyz` reports: each component not ready and why (empty: ready)."""
        problems: list[NotReady] = []
        if not self._ready:
            problems.append(NotReady("gateway", "stopping" if self._stopping else "starting"))
        spool = self.spool
        if spool.waiting or spool.depth_bytes >= spool.max_bytes:
            problems.append(
                NotReady(
                    "spool",
                    f"full: {spool.depth_bytes} of {spool.max_bytes} bytes not yet written to "
                    "InfluxDB; acknowledgements wait",
                )
            )
        after = self.loaded.config.api.influx_unhealthy_after_s
        failing = self.writes.failing_for_s()
        if failing is not None and failing >= after:
            problems.append(
                NotReady(
                    "influx",
                    f"writes failing for {failing:.0f} s (limit {after:g} s): "
                    f"{self.writes.last_error}",
                )
            )
        return problems

    async def _create_database(self) -> None:
        assert isinstance(self.sink, InfluxV1Sink)
        try:
            await self.sink.ensure_database()
        except WriteError as exc:
            log.warning("could not create the database now; data is spooled", error=str(exc))

    async def _start_api(self) -> None:
        cfg = self.loaded.config
        if not cfg.api.enabled:
            return
        # no store to serve (rules off, no shared PostgreSQL): health and metrics only
        if self.anomalies is None or self.regime is None:
            health = health_app(self.readiness, make_asgi_app())
            health.state.forward_status = self.forward.status if self.forward else None
            self.api = ApiServer(health, cfg.api.listen)
            await self.api.start()
            log.info("API listening (health only: rules are off)", listen=self._api_address())
            return
        app = create_app(
            store=self.anomalies,
            regime=self.regime,
            registry=self.registry,
            status=self._status(),
            accounts=self._accounts(),
            stream_max_s=cfg.api.stream_max_s,
            ready=self.readiness,
            metrics_app=make_asgi_app(),
            reload_registry=self.reload_registry,
            audit=self.audit,
            cases=self.cases,
            influx=cfg.influx,
            archive=self.archive.directory if self.archive is not None else None,
        )
        app.state.forward_status = self.forward.status if self.forward else None
        self.api = ApiServer(app, cfg.api.listen, graceful_timeout_s=2)
        await self.api.start()
        log.info("API listening", listen=self._api_address())

    def _status(self) -> StatusProvider:
        """Device status for the API: the rules' state in this process; on an API node or a
        rule worker of a cluster, the workers' snapshots in PostgreSQL."""
        if self.rules is not None:
            return RuleStatus(self.registry, self.offline, self.treatment, self.daily)
        cfg = self.loaded.config
        if cfg.cluster.postgres_dsn:  # what the workers last wrote
            from .cluster.pg_status import PgStatus

            self._pg_status = PgStatus(
                cfg.cluster.postgres_dsn,
                self.registry,
                status_interval_s=cfg.rules.status_interval_s,
            )
            return self._pg_status
        return RegistryStatus(self.registry)

    def _api_address(self) -> str:
        assert self.api is not None
        return f"{self.loaded.config.api.listen.rpartition(':')[0]}:{self.api.port}"

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
        self._stopping = True  # tasks ended from here on are not failures

        def left(share: float) -> float:
            return max(0.0, min(share, deadline - loop.time()))

        if self.api is not None:
            await _within(self.api.close(left(timeout / 8)), left(timeout / 8) + 0.1)
        if self.mqtt is not None:
            await _within(self.mqtt.close(left(timeout / 8)), left(timeout / 8) + 0.1)
            await _cancel(self._mqtt_task)
        if self.command_listener is not None:
            await _within(self.command_listener.close(), left(timeout / 8) + 0.1)
        await _within(self.hj212.close(left(timeout / 4)), left(timeout / 4) + 0.1)
        if self.rules_publisher is not None:  # what the devices sent until now, for the rules
            await _within(
                self.rules_publisher.close(self._publisher_task, left(timeout / 8)),
                left(timeout / 8) + 0.5,
            )
        if self.rule_worker is not None:  # partitions given back: another worker takes them
            await _cancel(self._worker_task)
            await _within(self.rule_worker.close(), left(timeout / 8) + 0.5)
        if self.commands is not None:  # the commands in flight: a reply or their timeout
            await _within(self.commands.close(), left(timeout / 8) + 0.5)
        if self.log is not None:  # the acks of what was published, then the connection
            await _within(self.log.close(left(timeout / 4)), left(timeout / 4) + 0.1)
        if self.stream_writer is not None:  # the batch in hand: written and acked, or left
            self.stream_writer.stop()
            if self._writer_task is not None:
                await _within(_settle(self._writer_task), left(timeout / 4) + 0.1)
                await _cancel(self._writer_task)
            await self.stream_writer.close()
        if self._forward_task is not None:
            await _within(self.forwarder.drain(left(timeout), self._forward_task), left(timeout))
            self._forward_task.cancel()
            try:
                await self._forward_task
            except asyncio.CancelledError:
                pass
            except Exception:  # its failure must not skip the spool's fsync below
                log.exception("forwarder failed")
        for task in (self._status_task, self._create_task, self._tick_task, self._notify_task):
            await _cancel(task)
        await self.spool.close()
        if self.forward is not None:  # before the archive it reads
            await _within(self.forward.close(), max(0.5, timeout * 0.05))
        if self.archive is not None:  # after the spool, whose last commit waits on it
            await self.archive.close()
        await _within(self.sink.close(), max(0.1, timeout * 0.05))
        if self.anomalies is not None:
            self.anomalies.close()
        if self.regime is not None:
            self.regime.close()
        if self.audit is not None:
            self.audit.close()
        if self.cases is not None:
            self.cases.close()
        if self.notify is not None:
            self.notify.close()
        if self._pg_status is not None:
            self._pg_status.close()
        log.info("stopped", spool_depth_bytes=self.spool.depth_bytes)


async def _within(step: Coroutine[Any, Any, None], seconds: float) -> None:
    """Run a shutdown step for at most `seconds`; past that it is cancelled."""
    try:
        await asyncio.wait_for(step, max(seconds, 0.01))
    except TimeoutError:
        log.warning("shutdown step cut short", step=getattr(step, "__qualname__", "?"))


async def _settle(task: asyncio.Task[None]) -> None:
    """Wait for a task to end by itself; its failure is reported by the supervision."""
    await asyncio.wait({task})


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it; a failure it ended with is already logged."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # reported by the supervision when it happened
        pass


async def run(loaded: LoadedConfig) -> None:
    """Run until SIGTERM or SIGINT; GatewayFailed when a background task failed."""
    gateway = Gateway(loaded)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stop)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload_on_signal)
    try:
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
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    if gateway.failure is not None:
        raise gateway.failure
