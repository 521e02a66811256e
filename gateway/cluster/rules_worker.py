"""A rule worker: owns enterprise partitions through leases and runs the rules over them.

Leases live in a JetStream key-value bucket whose entries expire after `lease_ttl_s`: key
`p.<partition>` holds the owner's id, `w.<id>` says a worker is alive. Every `lease_renew_s`
a worker renews its own (compare-and-set on the revision: a lease someone else holds is lost,
never overwritten; one that lapsed unrenewed and that nobody took is taken again, the engine
kept), counts the live workers, takes free partitions up to its fair share (partitions /
workers, rounded up) and gives back what is above it.

Each owned partition has a rule engine of its own, built fresh when the partition is taken:
it replays the partition's stream from `replay_s` back (or its start) and goes on with the
live messages, in order (an ordered consumer). The anomalies the replay raises again have the
ids they had (type, subject and start, from event time) and the store ignores them as
unchanged or stale. From the store it takes back only what the replay cannot rebuild: the
partition's open anomalies that started before the replayed window, and those of the
wall-clock rules (`device_offline`: a device never heard from has no message to replay).
The replay is done once it judged the partition's last message stored when it was taken; until
then the engine's wall-clock rules do not tick (a device's last contact replayed so far may be
hours old, which is not a silence). The consumer starts at the sequence of the first message
stored since `replay_s` ago, so that the client can restart it where it was (a server lost).

What it hears, a partition holds `reorder_s` (at most MAX_HELD entries; past that it stops
reading until there is room) and judges then in the order the ingestion nodes took it (their
stamps, reorder.py): the nodes publish independently, a meter's readings in turn. Only here
do all of a meter's readings meet, so here its interval energy is added (power.with_energy): to
the points the rules judge, and as a point of the same series and time to the points stream,
which InfluxDB merges into the stored reading.

With a `StatusOutput` a worker also writes what a single process writes besides anomalies:
after each message the `vehicle_passage.allowed` verdicts its engine judged, and every status
interval the `device_status` points of its partitions' devices (both through the pipeline to
the points stream, so the writers put them in InfluxDB), and their enterprises' status
snapshots for the API nodes (pg_status.py). A partition still replaying writes no status:
that is written once the replay has judged what the partition held when it was taken, then
every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import nats
import psycopg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    KeyValueError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
)
from nats.js.kv import KeyValue
from prometheus_client import Counter, Gauge

from gateway.anomalies.model import Anomaly, AnomalyEvent
from gateway.anomalies.store import AnomalyStore
from gateway.ingest.energy import EnergyHistory
from gateway.ingest.power import with_energy
from gateway.ingest.spool import SpoolClosed, SpoolFull
from gateway.model import DeviceEvent, Point, to_ns
from gateway.registry import Registry
from gateway.rules import catalog
from gateway.rules.data_gap import DataGap
from gateway.rules.engine import RuleEngine
from gateway.rules.offline import DeviceOffline
from gateway.rules.treatment import TreatmentNotRunning
from gateway.rules.vehicles import BannedVehicleEntry
from gateway.status.completeness import DeviceStatusPoints
from gateway.status.enterprises import RuleStatus

from .config import ClusterSection
from .partitions import Judged, decode_stamped, ensure_rules_stream, partition_of
from .pg_status import StatusSnapshots
from .reorder import release
from .stream import connect

log = structlog.get_logger("gateway.cluster")

OWNED = Gauge("cluster_rule_partitions_owned", "Partitions this rule worker owns")
TAKEN = Counter("cluster_rule_partitions_taken_total", "Partitions this worker took")
LOST = Counter("cluster_rule_partitions_lost_total", "Leases lost to another worker")
RETAKEN = Counter(
    "cluster_rule_leases_retaken_total", "Leases that lapsed unrenewed and were free: taken again"
)
MESSAGES = Counter("cluster_rule_messages_total", "Rules stream messages judged")
LATE = Counter(
    "cluster_rule_entries_late_total",
    "Entries judged after one their node took later (heard more than reorder_s after it)",
)
SNAPSHOTS = Counter(
    "cluster_rule_status_snapshots_total", "Enterprise status snapshots written to PostgreSQL"
)

EngineFactory = Callable[[AnomalyStore], RuleEngine]
KEPT_RULES = frozenset({"device_offline"})  # their open anomalies are always taken back
MAX_HELD = 50_000  # entries a partition holds before judging; past it, hearing waits
JUDGED_BETWEEN_YIELDS = 64


class PartitionStore(AnomalyStore):
    """The anomaly store as one partition's engine sees it: records of its enterprises only
    (a wall-clock rule of every engine looks at every registered device; each partition
    keeps its own), and the open anomalies of its enterprises that `restores` accepts."""

    def __init__(
        self,
        store: AnomalyStore,
        owns: Callable[[str], bool],
        restores: Callable[[Anomaly], bool] = lambda _: True,
    ) -> None:
        # a view for a rule engine: no backend of its own
        self._store = store
        self._owns = owns
        self._restores = restores

    def record(self, anomaly: Anomaly) -> AnomalyEvent | None:
        return self._store.record(anomaly) if self._owns(anomaly.enterprise) else None

    def open_anomalies(self) -> list[Anomaly]:
        return [
            a
            for a in self._store.open_anomalies()
            if self._owns(a.enterprise) and self._restores(a)
        ]


@dataclass
class StatusOutput:
    """Where a worker writes besides the anomaly store: `submit` takes the verdicts and the
    `device_status` points (the pipeline), `snapshots` the status the API nodes read (closed
    with the worker; None without PostgreSQL), every `interval_s`."""

    registry: Callable[[], Registry]
    submit: Callable[[Sequence[Point]], object]
    snapshots: StatusSnapshots | None
    interval_s: float = 60.0


@dataclass(frozen=True)
class _Views:
    """What a partition's engine knows, as the status and the verdicts need it."""

    vehicles: BannedVehicleEntry
    daily: DeviceStatusPoints
    status: RuleStatus

    @classmethod
    def of(cls, engine: RuleEngine, registry: Callable[[], Registry]) -> _Views:
        offline = catalog.find(engine.rules, DeviceOffline)
        daily = DeviceStatusPoints(registry, offline, catalog.find(engine.rules, DataGap))
        treatment = catalog.find(engine.rules, TreatmentNotRunning)
        return cls(
            catalog.find(engine.rules, BannedVehicleEntry),
            daily,
            RuleStatus(registry, offline, treatment, daily),
        )


@dataclass(slots=True)
class _Heard:
    """An entry of a rules stream message, held before it is judged."""

    received: float  # the event loop's clock
    stamp: int  # when its ingestion node took it (ns, wall clock)
    seq: int  # its message's stream sequence
    replaying: bool  # stored before the partition was taken
    entry: Judged


@dataclass
class _Owned:
    revision: int
    engine: RuleEngine
    views: _Views | None = None
    until: int = 0  # the partition's last stream sequence when taken (0: none to replay)
    heard: int = 0  # the stream sequence of the last message heard
    replayed: bool = False  # judged up to `until`: ticks, and its status can be written
    sub: Subscription | None = None
    held: deque[_Heard] = field(default_factory=deque)  # heard, not judged yet (arrival order)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    energy: EnergyHistory = field(default_factory=EnergyHistory)  # the partition's meters
    last_stamp: int = 0  # the latest stamp judged
    judging: asyncio.Task[None] | None = None


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


class RuleWorker:
    """Owns partitions and runs one engine per partition until `close()`."""

    def __init__(
        self,
        cfg: ClusterSection,
        store: AnomalyStore,
        engine_for: EngineFactory,
        *,
        node: str,
        tick_s: float = 1.0,
        status: StatusOutput | None = None,
    ) -> None:
        self.cfg = cfg
        self.tick_s = tick_s
        self.status = status
        self.store = store
        self.engine_for = engine_for
        self.id = f"{_token(node)}-{os.getpid()}-{os.urandom(3).hex()}"
        self.owned: dict[int, _Owned] = {}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._heartbeat = 0
        self._closing = False
        self.replaying = False  # judging a message stored before its partition was taken
        self._writes: set[asyncio.Task[None]] = set()  # status snapshots being written
        self._releasing: set[asyncio.Task[None]] = set()  # partitions whose judging failed

    async def open(self) -> None:
        self._nc = await connect(self.cfg, f"{self.id}-rules", lambda: self._closing)
        self._js = self._nc.jetstream(timeout=self.cfg.ack_timeout_s)
        await ensure_rules_stream(self._js, self.cfg)
        deadline = asyncio.get_running_loop().time() + 30.0
        while True:
            try:
                self._kv = await self._js.create_key_value(
                    bucket=self.cfg.lease_bucket,
                    ttl=self.cfg.lease_ttl_s,
                    history=1,
                    replicas=self.cfg.replicas,
                )
                return
            except (TimeoutError, APIError, nats.errors.Error) as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                log.info("lease bucket not ready yet", error=repr(exc))
                await asyncio.sleep(0.5)

    async def run(self) -> None:
        """Leases every `lease_renew_s`, the engines' ticks every `tick_s`, the status every
        status interval."""
        statuses = [self._statuses()] if self.status is not None else []
        await asyncio.gather(self._leases(), self._ticks(), *statuses)

    async def _leases(self) -> None:
        while True:
            try:
                await self.balance()
            except (TimeoutError, APIError, KeyValueError, nats.errors.Error) as exc:
                log.warning("lease round failed", error=repr(exc))
            await asyncio.sleep(self.cfg.lease_renew_s)

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            for owned in list(self.owned.values()):
                if owned.replayed:  # mid-replay a device's last contact is hours old
                    owned.engine.tick()

    async def _statuses(self) -> None:
        assert self.status is not None
        while True:
            await asyncio.sleep(self.status.interval_s)
            self.write_status(list(self.owned))

    def write_status(self, parts: Iterable[int]) -> None:
        """The `device_status` points and the status snapshots of the enterprises of `parts`
        (those owned and replayed; the registry's enterprises of each)."""
        out = self.status
        if out is None:
            return
        wanted = set(parts)
        mine: dict[int, set[str]] = {}
        for enterprise in out.registry().data.enterprises:
            part = partition_of(enterprise.id, self.cfg.partitions)
            if part in wanted:
                mine.setdefault(part, set()).add(enterprise.id)
        now = datetime.now(UTC)
        points: list[Point] = []
        bodies: list[tuple[str, dict[str, Any]]] = []
        for part, ents in mine.items():
            owned = self.owned.get(part)
            if owned is None or owned.views is None or not owned.replayed:
                continue  # until its replay is done the last snapshot written stays
            points += owned.views.daily.points(now, ents)
            for ent in sorted(ents):
                body = owned.views.status.enterprise_status(ent)
                if body is not None:
                    bodies.append((ent, body))
        if points:
            self._submit(points, "device status not written this interval")
        if out.snapshots is None or not bodies:
            return
        # in a thread: a thousand enterprises are tens of milliseconds of PostgreSQL
        write = asyncio.to_thread(out.snapshots.write, bodies, now, self.id)
        task = asyncio.get_running_loop().create_task(write)
        self._writes.add(task)
        task.add_done_callback(partial(self._written, len(bodies)))

    def _written(self, count: int, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            SNAPSHOTS.inc(count)
        elif isinstance(exc, psycopg.Error):  # the next interval writes them again
            log.warning("status snapshots not written this interval", error=str(exc))
        else:
            log.error("status snapshots failed", exc_info=exc)

    def _submit(self, points: Sequence[Point], failure: str) -> None:
        assert self.status is not None
        try:
            self.status.submit(points)
        except (SpoolFull, SpoolClosed) as exc:  # the anomalies are what counts
            log.warning(failure, error=str(exc))

    async def _judge_held(self, part: int, owned: _Owned) -> None:
        """Judge what the partition heard once held `reorder_s`, in the order the ingestion
        nodes took it (reorder.py), then its verdicts and, once the replay is done, the
        status."""
        loop = asyncio.get_running_loop()
        hold = self.cfg.reorder_s
        while True:
            self._judged(part, owned)
            owned.room.set()
            if not owned.held:
                owned.arrived.clear()
                await owned.arrived.wait()
                continue
            wait = owned.held[0].received + hold - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            patches: list[Point] = []
            batch, owned.held = release(
                owned.held, loop.time() - hold, lambda h: h.received, lambda h: h.stamp
            )
            for count, item in enumerate(batch, 1):
                if item.stamp < owned.last_stamp:
                    LATE.inc()
                else:
                    owned.last_stamp = item.stamp
                try:
                    self._judge(owned, item, patches)
                except Exception:  # a rule's defect must not silence the partition
                    log.exception("rules failed on an entry", partition=part)
                if count % JUDGED_BETWEEN_YIELDS == 0:
                    await asyncio.sleep(0)  # the lease rounds
            if patches:
                self._submit(patches, "interval energy not written")

    def _judging_ended(self, part: int, owned: _Owned, task: asyncio.Task[None]) -> None:
        """A partition's judging ends only when it is dropped; if it failed instead, the
        partition is given back (taken again, its replay rebuilds it) rather than owned deaf."""
        if task.cancelled() or self.owned.get(part) is not owned:
            return
        log.error("partition judging failed; given back", partition=part, exc_info=task.exception())
        release = asyncio.get_running_loop().create_task(self._release(part))
        self._releasing.add(release)  # held until done
        release.add_done_callback(self._releasing.discard)

    def _judge(self, owned: _Owned, item: _Heard, patches: list[Point]) -> None:
        """One entry through the partition's engine, a meter's interval energy added first
        (its patch point into `patches`)."""
        self.replaying = item.replaying
        try:
            if isinstance(item.entry, DeviceEvent):
                owned.engine.on_device_event(item.entry)
                return
            points = item.entry
            if self.status is not None:
                registry = self.status.registry()
                points = []
                for point in item.entry:
                    judged, stored = with_energy(point, owned.energy, registry)
                    points += judged
                    patches += stored
            owned.engine.on_points(points)
        finally:
            self.replaying = False

    def _judged(self, part: int, owned: _Owned) -> None:
        """After judging: the verdicts written; once the replay is done, the status."""
        if owned.views is not None:
            verdicts = owned.views.vehicles.take_verdicts()  # judged once, just before
            if verdicts:
                self._submit(verdicts, "allowed verdicts not written")
        if owned.replayed or owned.heard < owned.until:
            return
        if not owned.held or owned.held[0].seq > owned.until:
            owned.replayed = True
            self.write_status([part])

    async def _first_since(self, part: int, since: datetime) -> int:
        """The stream sequence the partition's replay starts at: that of the first message
        stored at or after `since` (the next one to come if none is). Asked of a consumer made
        for the question and deleted again: the ordered consumer then starts by sequence, which
        it can also restart from (a consumer started by time cannot be restarted by sequence)."""
        assert self._js is not None
        config = api.ConsumerConfig(
            filter_subject=self.cfg.rules_subject(part),
            deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=since,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        info = await self._js.add_consumer(self.cfg.rules_stream, config)
        with contextlib.suppress(TimeoutError, APIError, NotFoundError, nats.errors.Error):
            await self._js.delete_consumer(self.cfg.rules_stream, info.name)
        delivered = info.delivered.stream_seq if info.delivered is not None else 0
        return delivered + 1

    async def _last_stored(self, part: int, since: datetime) -> int:
        """The stream sequence of the partition's last message, 0 if none is to replay."""
        assert self._js is not None
        try:
            last = await self._js.get_last_msg(self.cfg.rules_stream, self.cfg.rules_subject(part))
        except NotFoundError:
            return 0
        if last.time is not None and last.time < since:
            return 0
        return last.seq or 0

    async def balance(self) -> None:
        """One round: heartbeat, renew, count the workers, take or give back."""
        kv = self._kv
        assert kv is not None
        await kv.put(f"w.{self.id}", b"1")
        for part, owned in list(self.owned.items()):
            try:
                owned.revision = await kv.update(f"p.{part}", self.id.encode(), last=owned.revision)
            except KeyWrongLastSequenceError:
                if await self._retake(kv, part, owned):
                    continue
                log.warning("rule partition lease lost", partition=part)
                LOST.inc()
                await self._drop(part)
        try:  # a set: a key written during the listing can come twice
            keys = set(await kv.keys())
        except NoKeysError:
            keys = set()
        workers = max(1, sum(k.startswith("w.") for k in keys))
        held = {int(k[2:]) for k in keys if k.startswith("p.") and k[2:].isdigit()}
        share = math.ceil(self.cfg.partitions / workers)
        free = [p for p in range(self.cfg.partitions) if p not in held and p not in self.owned]
        random.shuffle(free)
        for part in free:
            if len(self.owned) >= share:
                break
            try:
                revision = await kv.create(f"p.{part}", self.id.encode())
            except KeyWrongLastSequenceError:
                continue  # another worker was quicker
            await self._take(part, revision)
        for part in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            await self._release(part)
        OWNED.set(len(self.owned))

    async def _retake(self, kv: KeyValue, part: int, owned: _Owned) -> bool:
        """A lease that lapsed while this worker could not renew it (NATS electing a leader
        takes longer than the TTL) and that no other worker holds: taken again, the engine
        kept (it missed nothing: its consumer goes on). False when another holds it."""
        try:
            owned.revision = await kv.create(f"p.{part}", self.id.encode())
        except KeyWrongLastSequenceError:
            return False
        RETAKEN.inc()
        log.warning("rule partition lease lapsed; taken again", partition=part)
        return True

    async def _take(self, part: int, revision: int) -> None:
        """Take a partition whose lease was just made; if NATS fails it midway (a leader
        being elected), give the lease back, for a later round to take it whole."""
        try:
            await self._start(part, revision)
        except BaseException:
            await self._drop(part)
            await self._give_back(part, revision)
            raise

    async def _start(self, part: int, revision: int) -> None:
        """A fresh engine, the open anomalies, then the replay and the live messages."""
        assert self._js is not None
        parts = self.cfg.partitions
        since = datetime.now(UTC) - timedelta(seconds=self.cfg.replay_s)
        engine = self.engine_for(
            PartitionStore(
                self.store,
                lambda ent: partition_of(ent, parts) == part,
                lambda a: a.started_at < since or a.rule in KEPT_RULES,
            )
        )
        views = _Views.of(engine, self.status.registry) if self.status is not None else None
        start = await self._first_since(part, since)
        until = await self._last_stored(part, since)
        owned = self.owned[part] = _Owned(revision, engine, views, until, start - 1)
        taken = datetime.now(UTC)

        loop = asyncio.get_running_loop()

        async def hear(msg: Msg) -> None:
            seq = msg.metadata.sequence.stream
            if self.owned.get(part) is not owned or seq <= owned.heard:
                return  # a restarted consumer may start before what was heard
            owned.heard = seq
            MESSAGES.inc()
            try:
                entries = decode_stamped(msg.data)
            except (ValueError, KeyError, TypeError):
                log.warning("rules stream message not understood", partition=part)
                entries = []
            # the replay judges again what was judged before: no device commands for it
            stored = msg.metadata.timestamp
            replaying = stored < taken
            stored_ns = to_ns(stored)  # the stamp of an entry without one
            now = loop.time()
            owned.held.extend(
                _Heard(now, stored_ns if stamp is None else stamp, seq, replaying, entry)
                for entry, stamp in entries
            )
            owned.arrived.set()
            while len(owned.held) >= MAX_HELD and self.owned.get(part) is owned:
                owned.room.clear()
                await owned.room.wait()
            # the client hands a replay's queued messages over without yielding: let the
            # lease rounds and the judging run between them
            await asyncio.sleep(0)

        owned.judging = loop.create_task(self._judge_held(part, owned))
        owned.judging.add_done_callback(partial(self._judging_ended, part, owned))
        owned.sub = await self._js.subscribe(
            self.cfg.rules_subject(part),
            stream=self.cfg.rules_stream,
            cb=hear,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=start),
        )
        TAKEN.inc()
        log.info("rule partition taken", partition=part, worker=self.id, replay_until=until)
        if until == 0 and not owned.replayed:
            owned.replayed = True  # nothing to replay
            self.write_status([part])

    async def _drop(self, part: int) -> None:
        owned = self.owned.pop(part, None)
        if owned is None:
            return
        owned.room.set()  # a message waiting for room goes away unjudged
        if owned.judging is not None:  # what it held is judged by the next owner's replay
            owned.judging.cancel()
            await asyncio.wait({owned.judging})  # its end, without taking a cancel of ours
        if owned.sub is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await owned.sub.unsubscribe()

    async def _release(self, part: int) -> None:
        """Give a partition back (above the fair share, or closing): its lease is deleted so
        another worker takes it at its next round."""
        owned = self.owned.get(part)
        await self._drop(part)
        if owned is not None:
            await self._give_back(part, owned.revision)
            log.info("rule partition released", partition=part, worker=self.id)

    async def _give_back(self, part: int, revision: int) -> None:
        if self._kv is not None:
            with contextlib.suppress(TimeoutError, APIError, KeyValueError, nats.errors.Error):
                await self._kv.delete(f"p.{part}", last=revision)

    async def close(self) -> None:
        """Give every partition back, close the connection, then the snapshots."""
        try:
            await self._close()
        finally:
            if self._writes:  # the last snapshots, then the connection
                await asyncio.wait(set(self._writes), timeout=5.0)
            if self.status is not None and self.status.snapshots is not None:
                self.status.snapshots.close()

    async def _close(self) -> None:
        if self._nc is None:
            return
        self._closing = True
        for part in list(self.owned):
            await self._release(part)
        if self._kv is not None:
            with contextlib.suppress(TimeoutError, APIError, KeyValueError, nats.errors.Error):
                await self._kv.delete(f"w.{self.id}")
        OWNED.set(0)
        nc, self._nc = self._nc, None
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await asyncio.wait_for(nc.close(), 2.0)
