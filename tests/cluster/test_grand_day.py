"""The grand day: the simulator's two days (a normal one, then the scripted one) played once
into a single process and once into the cluster on loopback (devkit/cluster_demo.py: three
NATS servers, PostgreSQL, InfluxDB, Mosquitto, HAProxy with send-proxy-v2 in front of two
ingestion nodes, two writers, two rule workers, each a process), as fast as each answers,
with the same traffic: what the plants send depends on the days played only (their random
numbers are seeded by enterprise and date), and both runs play the same two days.

During the cluster's scripted day, at fixed points of the devices' clock: ingestion node
`ingest-2` is killed (SIGKILL) at 04:20 and started again at 04:40 (its loggers reconnect
through HAProxy, to `ingest-1` or to it once it is back; its MQTT session resumes with what
the broker kept for it); the NATS server leading the points stream is killed at 09:20 and
started again at 13:20; the rule worker owning SIM0's partition is killed at 14:20 and not
started again (the other takes its partitions and replays them). The devices' clock waits
while the killed node starts again, while NATS elects new leaders and while the restarted
server catches up: played as fast as possible, a recovery of seconds would otherwise span
hours of the day, and a real day sends next to nothing in those seconds. What was in flight
at each kill goes on meanwhile.

Then:
- every reading the devices were acknowledged for (a 9014 for each packet of an HJ 212
  upload, the broker's PUBACK for an MQTT message) is in InfluxDB exactly once, as one point
  of its series at its time, in both runs, with the single process's values (a meter's
  interval energy included, which in the cluster the rule worker adds; known to differ in
  some runs, as the anomalies below);
- the anomalies of the cluster's PostgreSQL store, as (type, subject) with their count, are
  those of the single process's store (which are the scripted day's, `expected_anomalies`);
  for the types judged on event time, with the same start and end too (known to differ in
  some runs: then the test is an expected failure, `KNOWN_DIFFERENCES`, once every other check
  has passed; the types and subjects must be the same in every run). For
  `device_offline`, `auth_failure` and `unregistered_device` the start is the wall clock's
  moment of the silence or of the refused frame, which differs between any two runs (and so
  does the anomaly id made from it): for those type, subject, count and whether it is still
  open are compared, not the times;
- each anomaly id once, with one `opened` event first, at most one `closed`, last, and its
  stored state that of its last event;
- an SSE client of each API node (the admin token), connected before the day and resuming
  with `Last-Event-ID` when its node goes away, received exactly the store's events, in
  `seq` order.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from devkit import localstack
from devkit.cluster_demo import INGEST, PARTITIONS, Cluster, Node, Options, declare, running
from devkit.demo import BEIJING, regime_for
from devkit.simulator import Simulator, registry_toml
from devkit.simulator.devices import Action, Upload
from devkit.simulator.expected import WALL_CLOCK_TYPES, Expected, expected_anomalies
from gateway.anomalies.model import Anomaly, AnomalyEvent
from gateway.anomalies.store import AnomalyStore
from gateway.cluster.config import ClusterSection
from gateway.cluster.partitions import partition_of
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.config import load_config
from gateway.regime import AlertSpec, OrderSpec
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config

ENTERPRISES = 2
OFFLINE_AFTER_S = 30.0  # the loggers' offline threshold (wall clock)
RETRY_FOR_S = 120.0  # a logger sends a frame again until answered, this long at most
SETTLED_S = 3.0  # the store is settled once it holds the expected and is unchanged this long
LIMIT_S = 240.0  # a bound against hanging, not a timing
SECTION = ClusterSection()
STREAMS = (SECTION.stream, SECTION.rules_stream, f"KV_{SECTION.lease_bucket}")
INTERVALS = {"2051": "minute", "2061": "hour"}

KNOWN_DIFFERENCES = (
    "a known cluster defect (gateway/cluster/README.md, Not done yet): a node whose rules-stream"
    " publishes are held up longer than reorder_s (NATS electing a leader) has its entries"
    " judged late, which a replay then judges in their place"
)
Key = tuple[str, ...]  # a reading as InfluxDB keeps it: measurement, series tags, second
Values = tuple[float | str | None, ...]


def utc_second(local: datetime) -> str:
    """A Beijing time (naive) as InfluxDB writes the instant, to the second."""
    return f"{local.replace(tzinfo=BEIJING).astimezone(UTC):%Y-%m-%dT%H:%M:%S}"


def readings(actions: Iterable[Action]) -> dict[Key, set[Key]]:
    """The InfluxDB key of each reading of the acknowledged `actions`, and the distinct
    readings that fall on it (two vehicles through one gate in one second share a key)."""
    out: dict[Key, set[Key]] = {}
    for action in actions:
        if isinstance(action, Upload):
            if action.cn not in INTERVALS or action.data_time is None:
                continue  # heartbeats
            second = utc_second(action.data_time)
            for group in action.cp.split(";")[1:]:  # after DataTime
                code = group.partition("-")[0]
                key: Key = ("emission", action.logger.mn, code, INTERVALS[action.cn], second)
                out.setdefault(key, set()).add(key)
            continue
        kind, enterprise, device = action.topic.split("/")
        records = action.payload if isinstance(action.payload, list) else [action.payload]
        for record in records:
            local = datetime.fromisoformat(str(record["time"]))
            if kind == "power":
                key = ("power", enterprise, device, utc_second(local))
                out.setdefault(key, set()).add(key)
            else:
                direction = str(record["direction"])
                key = ("vehicle_passage", enterprise, device, direction, utc_second(local))
                out.setdefault(key, set()).add((*key, str(record["plate"])))
    return out


def stored(url: str, db: str) -> dict[Key, list[Values]]:
    """The points of the devices' measurements in InfluxDB by key, with their values (the
    reading's own, and the interval energy the gateway derives for a meter)."""
    found: dict[Key, list[Values]] = {}
    query = "SELECT avg, mn, pollutant, interval FROM emission"
    for row in influx_rows(url, db, query):
        key: Key = ("emission", row["mn"], row["pollutant"], row["interval"], row["time"][:19])
        found.setdefault(key, []).append((row["avg"],))
    query = "SELECT p_kw, kwh, energy_kwh, enterprise, meter FROM power"
    for row in influx_rows(url, db, query):
        key = ("power", row["enterprise"], row["meter"], row["time"][:19])
        found.setdefault(key, []).append((row["p_kw"], row["kwh"], row["energy_kwh"]))
    query = "SELECT plate, enterprise, gate, direction FROM vehicle_passage"
    for row in influx_rows(url, db, query):
        key = ("vehicle_passage", row["enterprise"], row["gate"], row["direction"])
        found.setdefault((*key, row["time"][:19]), []).append((row["plate"],))
    return found


def acked(sim: Simulator) -> list[Action]:
    uploads = [u for logger in sim.loggers.values() for u in logger.acked]
    return [*uploads, *sim.published]


def expected_of(today: datetime) -> list[Expected]:
    day = today - timedelta(days=1)
    found = (e for k in range(ENTERPRISES) for e in expected_anomalies(day, k))
    return sorted(found, key=Expected.key)


def shown(anomalies: Iterable[Anomaly]) -> list[Expected]:
    found = [
        Expected.of(a.enterprise, a.type, a.subject, a.started_at, a.ended_at) for a in anomalies
    ]
    return sorted(found, key=Expected.key)


def kinds(items: Iterable[Expected]) -> Counter[tuple[str, str]]:
    return Counter((e.type, e.subject) for e in items)


def differences(want: list[Expected], got: list[Expected]) -> str:
    lines = [f"- {e}" for e in sorted(set(want) - set(got), key=Expected.key)]
    lines += [f"+ {e}" for e in sorted(set(got) - set(want), key=Expected.key)]
    wanted = kinds(want)
    counts = [f"x {k}: {n} vs {wanted[k]}" for k, n in kinds(got).items() if n != wanted[k]]
    return "\n".join(lines + counts) or "(no differences)"


@dataclass
class Run:
    """What one run left: the anomalies and events of its store, what its devices were
    acknowledged for and what InfluxDB holds."""

    anomalies: list[Anomaly]
    events: list[AnomalyEvent]
    readings: dict[Key, set[Key]]
    points: dict[Key, list[Values]]
    resent: int


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, limit_s: float = LIMIT_S
) -> None:
    deadline = time.monotonic() + limit_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.25)


async def settle(
    query: Callable[[], list[Anomaly]], want: list[Expected], *, strict: bool
) -> list[Anomaly]:
    """The store's anomalies once it holds every one of `want` (the wall-clock types open or
    closed as expected) and nothing changed for `SETTLED_S`; past `LIMIT_S`, an error if
    `strict`, else what it holds then (compared by the caller)."""
    deadline = time.monotonic() + LIMIT_S
    last: list[Expected] = []
    changed = time.monotonic()
    while True:
        items = await asyncio.to_thread(query)
        now = shown(items)
        if now != last:
            last, changed = now, time.monotonic()
        if set(want) <= set(now) and time.monotonic() - changed >= SETTLED_S:
            return items
        if time.monotonic() > deadline:
            if strict:
                raise AssertionError("the anomalies never settled:\n" + differences(want, now))
            return items
        await asyncio.sleep(0.25)


async def points_in(url: str, db: str, keys: Iterable[Key]) -> dict[Key, list[Values]]:
    """InfluxDB's points once every key of `keys` is there (writers deliver asynchronously)."""
    wanted = set(keys)
    deadline = time.monotonic() + LIMIT_S
    while True:
        try:
            found = await asyncio.to_thread(stored, url, db)
        except localstack.LocalStackError:
            found = {}
        if wanted <= set(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def play(
    sim: Simulator, today: datetime, run: Callable[[], Awaitable[list[Anomaly]]]
) -> list[Anomaly]:
    """The normal day, the scripted day, then heartbeats of the live loggers while `run`
    waits for the anomalies."""
    await sim.play_day(today - timedelta(days=2), scripted=False, paced=False)
    await sim.play_day(today - timedelta(days=1), scripted=True)
    stop = asyncio.Event()
    alive = asyncio.create_task(sim.keep_alive(stop, OFFLINE_AFTER_S / 3))
    try:
        return await run()
    finally:
        stop.set()
        await alive


async def single_run(
    directory: Path, influx_url: str, mqtt_port: int, database: str, today: datetime
) -> Run:
    """The embedded default: one gateway process with its SQLite stores."""
    config = write_config(
        directory,
        influx_url,
        database,
        registry=registry_toml(ENTERPRISES, logger_offline_after_s=OFFLINE_AFTER_S),
        mqtt={
            "enabled": True,
            "port": mqtt_port,
            "topic_prefix": f"grand-{database}",
            "client_id": f"grand-{database}",
        },
    )
    gw = Gateway(load_config(config))
    await gw.start()
    try:
        store, regime, mqtt = gw.anomalies, gw.regime, gw.mqtt
        assert store is not None and regime is not None and mqtt is not None
        await asyncio.wait_for(mqtt.connected.wait(), 15)
        for table, body in regime_for(today - timedelta(days=1), ENTERPRISES):
            if table == "orders":
                regime.add_order(OrderSpec.model_validate(body), issued_by="test")
            else:
                regime.add_alert(AlertSpec.model_validate(body), issued_by="test")
        async with Simulator(
            enterprises=ENTERPRISES,
            hj212=("127.0.0.1", gw.hj212.port),
            mqtt=("127.0.0.1", mqtt_port),
            prefix=f"grand-{database}",
            retry_for_s=RETRY_FOR_S,
        ) as sim:
            items = await play(
                sim,
                today,
                lambda: settle(lambda: store.query(limit=1000)[0], expected_of(today), strict=True),
            )
        events = store.events_after(0, limit=100_000)
        keys = readings(acked(sim))
        resent = sum(logger.resent for logger in sim.loggers.values())
    finally:
        await gw.shutdown()
    return Run(items, events, keys, await points_in(influx_url, database, keys), resent)


class Follower:
    """An SSE client of one API node's anomaly stream from its first event, which resumes
    with `Last-Event-ID` when the connection ends (as a browser does)."""

    def __init__(self, base: str, token: str) -> None:
        self.url = f"{base}/api/v1/anomalies/stream"
        self.token = token
        self.events: list[tuple[int, str, str]] = []  # seq, event, anomaly id
        self.connects = 0
        self.stop = asyncio.Event()

    @property
    def last(self) -> int:
        return self.events[-1][0] if self.events else 0

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=None, connect=2, sock_read=None)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while not self.stop.is_set():
                try:
                    resume = {"Last-Event-ID": str(self.last)}
                    async with http.get(self.url, headers=resume) as response:
                        if response.status == 200:
                            self.connects += 1
                            await self._read(response)
                except (aiohttp.ClientError, OSError):
                    pass  # the node is down: try again
                await asyncio.sleep(0.2)

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                fields = dict(
                    line.split(": ", 1) for line in block.decode().split("\n") if ": " in line
                )
                if "id" in fields and "data" in fields:
                    anomaly = json.loads(fields["data"])
                    self.events.append((int(fields["id"]), fields["event"], anomaly["id"]))


@dataclass
class Faults:
    """The kills of the cluster's scripted day, each at its moment of the devices' clock
    (`Simulator.at_moment`)."""

    cluster: Cluster
    day: datetime
    done: list[str] = field(default_factory=list)
    killed_nats: localstack.NatsServer | None = None
    killed_worker: str = ""

    def __post_init__(self) -> None:
        self.plan: list[tuple[datetime, Callable[[], Awaitable[str]]]] = [
            (self._at(4, 20), self.kill_ingest),
            (self._at(4, 40), self.restart_ingest),
            (self._at(9, 20), self.kill_nats),
            (self._at(13, 20), self.restart_nats),
            (self._at(14, 20), self.kill_worker),
        ]

    def _at(self, hour: int, minute: int) -> datetime:
        return self.day + timedelta(hours=hour, minutes=minute)

    async def __call__(self, moment: datetime) -> None:
        while self.plan and moment >= self.plan[0][0]:
            when, step = self.plan.pop(0)
            self.done.append(f"{when:%H:%M} {await step()}")

    async def kill_ingest(self) -> str:
        self.cluster.node(INGEST[1]).kill()
        return f"{INGEST[1]} killed"

    async def restart_ingest(self) -> str:
        node = self.cluster.node(INGEST[1])
        node.start()

        async def up() -> bool:
            subscribed = node.log.read_text(errors="replace").count('"MQTT subscribed"')
            return subscribed >= 2 and await _answers(f"{self.cluster.api(node.name)}/healthz")

        await until(up, f"{node.name} up again")
        return f"{node.name} started again"

    async def kill_nats(self) -> str:
        leader = await _leader(self.cluster, SECTION.stream)
        (server,) = [s for s in self.cluster.nats if s.name == f"nats-{leader}"]
        server.kill()
        self.killed_nats = server

        async def elected() -> bool:  # the devices' clock waits for the fail-over
            try:
                leaders = [await _leader(self.cluster, s) for s in STREAMS]
            except (TimeoutError, nats.errors.Error, AssertionError):
                return False
            return leader not in leaders

        await until(elected, "new leaders of the streams and the lease bucket")
        return f"{server.name} (leader of {SECTION.stream}) killed"

    async def restart_nats(self) -> str:
        server = self.killed_nats
        assert server is not None
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(localstack.wait_jetstream, [server])  # current again
        return f"{server.name} started again"

    async def kill_worker(self) -> str:
        owner = await _owner(self.cluster, partition_of("SIM0", PARTITIONS))
        (worker,) = [w for w in self.cluster.workers if owner.startswith(f"{w.name}-")]
        worker.kill()
        self.killed_worker = worker.name
        return f"{worker.name} (owner of SIM0's partition) killed"


async def _answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError):
        return False


async def _leader(cluster: Cluster, stream: str) -> str:
    nc = await nats.connect(servers=[s.url for s in cluster.nats if s.running], connect_timeout=2)
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader is not None
        return info.cluster.leader
    finally:
        await nc.close()


async def _owner(cluster: Cluster, partition: int) -> str:
    """The worker holding the partition's lease (waiting while it is between owners)."""
    nc = await nats.connect(servers=[s.url for s in cluster.nats if s.running], connect_timeout=2)
    try:
        kv = await nc.jetstream().key_value(SECTION.lease_bucket)
        holder = ""

        async def held() -> bool:
            nonlocal holder
            try:
                holder = ((await kv.get(f"p.{partition}")).value or b"").decode()
            except KeyNotFoundError:
                return False
            return bool(holder)

        await until(held, f"an owner of partition {partition}")
        return holder
    finally:
        await nc.close()


def pg_state(dsn: str) -> tuple[list[Anomaly], list[AnomalyEvent]]:
    store = AnomalyStore(PgAnomalies(dsn))
    try:
        return store.query(limit=1000)[0], store.events_after(0, limit=100_000)
    finally:
        store.close()


@dataclass
class ClusterRun(Run):
    faults: list[str] = field(default_factory=list)
    followers: dict[str, Follower] = field(default_factory=dict)
    carried: dict[str, float] = field(default_factory=dict)
    killed_worker: str = ""
    owned: dict[str, float] = field(default_factory=dict)
    ingest: list[Node] = field(default_factory=list)


async def cluster_run(work: Path, today: datetime) -> ClusterRun:
    options = Options(
        ENTERPRISES,
        hj212_port=localstack.free_port(),
        api_port=localstack.free_port_run(2),
        offline_after_s=OFFLINE_AFTER_S,
    )
    day = today - timedelta(days=1)
    async with running(work, options) as cluster:
        followers = {name: Follower(cluster.api(name), options.token) for name in INGEST}
        reading = [asyncio.create_task(f.run()) for f in followers.values()]
        try:
            await declare(cluster, day)
            faults = Faults(cluster, day)

            def query() -> list[Anomaly]:
                return pg_state(cluster.dsn)[0]

            async with Simulator(
                enterprises=ENTERPRISES,
                hj212=("127.0.0.1", options.hj212_port),
                mqtt=("127.0.0.1", cluster.mqtt_port),
                retry_for_s=RETRY_FOR_S,
                at_moment=faults,
            ) as sim:
                await play(sim, today, lambda: settle(query, expected_of(today), strict=False))
            items, events = await asyncio.to_thread(pg_state, cluster.dsn)
            last = events[-1].seq if events else 0

            async def caught_up() -> bool:
                return all(f.last >= last for f in followers.values())

            await until(caught_up, "every SSE client has the store's last event")
        finally:
            for follower in followers.values():
                follower.stop.set()
            for task in reading:
                task.cancel()
            await asyncio.gather(*reading, return_exceptions=True)
        await asyncio.to_thread(localstack.wait_jetstream, cluster.nats)  # caught up again
        keys = readings(acked(sim))
        points = await points_in(cluster.influx_url, "pollution", keys)
        metric = "hj212_proxy_headers_total"
        carried = {n.name: n.metric(metric, 'version="2"') for n in cluster.ingest}
        owned = {w.name: w.metric("cluster_rule_partitions_owned") for w in cluster.workers}
        late = sum(w.metric("cluster_rule_entries_late_total") for w in cluster.workers)
        print(f"entries judged late: {late:g} (the killed worker's not counted)")
        return ClusterRun(
            items,
            events,
            keys,
            points,
            sum(logger.resent for logger in sim.loggers.values()),
            faults.done,
            followers,
            carried,
            faults.killed_worker,
            owned,
            cluster.ingest,
        )


def point_problems(run: Run) -> list[str]:
    """Every acknowledged reading stored, once: as many points on its key as readings fall
    on it, and no key holding more points than readings."""
    out = []
    missing = [k for k in run.readings if k not in run.points]
    if missing:
        out.append(f"{len(missing)} acknowledged readings not in InfluxDB, such as {missing[:3]}")
    twice = [
        (k, len(run.points[k]), len(same))
        for k, same in run.readings.items()
        if k in run.points and len(run.points[k]) != len(same)
    ]
    if twice:
        out.append(f"{len(twice)} readings stored more than once, such as {twice[:3]}")
    return out


def value_problems(grand: ClusterRun, single: Run) -> list[str]:
    """The values stored for each acknowledged reading are the single process's, a meter's
    interval energy (`energy_kwh`, which the rule worker of its enterprise adds) included."""
    out = []
    for key in sorted(grand.readings.keys() & single.readings.keys()):
        got, want = grand.points.get(key), single.points.get(key)
        if got is None or want is None or len(got) != 1 or len(want) != 1:
            continue  # counted by point_problems
        if not _same(got[0], want[0]):
            out.append(f"{key}: {got[0]} in the cluster, {want[0]} in the single process")
    return [f"{len(out)} readings with other values, such as:", *out[:5]] if out else []


def _same(a: Values, b: Values) -> bool:
    return all(
        x == y or (isinstance(x, float) and isinstance(y, float) and abs(x - y) < 1e-6)
        for x, y in zip(a, b, strict=True)
    )


def event_problems(run: Run) -> list[str]:
    """Each anomaly once, its events in `seq` order: one `opened` first, at most one
    `closed`, last (an instant, such as a vehicle, opens closed), and the stored state that
    of its last event."""
    out = []
    ids = [a.id for a in run.anomalies]
    if len(ids) != len(set(ids)):
        out.append(f"anomaly ids more than once: {[i for i, n in Counter(ids).items() if n > 1]}")
    by_id: dict[str, list[AnomalyEvent]] = {}
    for event in run.events:
        by_id.setdefault(event.anomaly.id, []).append(event)
    if set(by_id) != set(ids):
        out.append(f"events of no anomaly, or anomalies without events: {set(by_id) ^ set(ids)}")
    seqs = [e.seq for e in run.events]
    if seqs != sorted(set(seqs)):
        out.append("event seqs not increasing")
    for anomaly in run.anomalies:
        events = by_id.get(anomaly.id, [])
        order = [e.event for e in events]
        if not _in_order(order):
            out.append(f"{anomaly.id} {anomaly.type} {anomaly.subject}: events {order}")
        elif (events[-1].anomaly.state, events[-1].anomaly.ended_at) != (
            anomaly.state,
            anomaly.ended_at,
        ):
            out.append(f"{anomaly.id}: stored {anomaly.state}, last event otherwise")
    return out


def _in_order(order: Sequence[str]) -> bool:
    """One `opened`, first; at most one `closed`, last."""
    opened = bool(order) and order[0] == "opened" and order.count("opened") == 1
    return opened and "closed" not in order[:-1]


def anomaly_problems(grand: Run, single: Run) -> list[str]:
    """The cluster's anomalies are the single process's: (type, subject) with their count;
    start and end too for the types judged on event time."""
    got, reference = shown(grand.anomalies), shown(single.anomalies)
    timed = [e for e in reference if e.type not in WALL_CLOCK_TYPES]
    if kinds(got) == kinds(reference) and [e for e in got if e.type not in WALL_CLOCK_TYPES] == (
        timed
    ):
        return []
    lines = ["other anomalies than the single process's (- missing, + extra, x count):"]
    lines += differences(reference, got).splitlines()
    for a in grand.anomalies:  # what the extra ones say
        if shown([a])[0] not in reference:
            lines.append(f"    {a.type} {a.subject} detected {a.detected_at:%H:%M:%S}: {a.summary}")
    return lines


def subject_problems(grand: Run, single: Run) -> list[str]:
    """The cluster raised the single process's anomaly types on the same subjects, no other."""
    got, want = set(kinds(shown(grand.anomalies))), set(kinds(shown(single.anomalies)))
    lines = [f"- {t} {s}" for t, s in sorted(want - got)]
    lines += [f"+ {t} {s}" for t, s in sorted(got - want)]
    return ["other anomaly types or subjects than the single process's:", *lines] if lines else []


def stream_problems(grand: ClusterRun) -> list[str]:
    """Each SSE client received exactly the store's events, in order."""
    want = [(e.seq, e.event, e.anomaly.id) for e in grand.events]
    out = []
    for name, follower in grand.followers.items():
        if follower.events != want:
            have, seqs = set(follower.events), [e[0] for e in follower.events]
            out.append(
                f"SSE client of {name} ({follower.connects} connections): "
                f"{len(set(want) - have)} events missing, "
                f"{len(seqs) - len(set(seqs))} twice, {len(have - set(want))} unknown"
            )
    if grand.followers[INGEST[1]].connects < 2:
        out.append(f"the SSE client of {INGEST[1]}, whose node was killed, did not resume")
    return out


async def test_the_cluster_loses_nothing_of_a_grand_day_with_kills(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    today = datetime.now(BEIJING).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    single = await single_run(tmp_path / "single", influx.url, mosquitto.port, database, today)
    want = expected_of(today)
    assert shown(single.anomalies) == want, differences(want, shown(single.anomalies))
    assert point_problems(single) == []
    assert event_problems(single) == []

    grand = await cluster_run(tmp_path / "cluster", today)
    print("\n".join(grand.faults))
    assert len(grand.faults) == 5 and grand.killed_worker, grand.faults  # every fault happened
    assert grand.resent > 0  # loggers of the killed node sent again
    assert all(n > 0 for n in grand.carried.values()), grand.carried  # HAProxy used both
    survivor = [w for w in grand.owned if w != grand.killed_worker]
    assert [grand.owned[w] for w in survivor] == [PARTITIONS], grand.owned
    assert set(grand.readings) == set(single.readings)  # the same traffic, acknowledged

    problems = [
        *point_problems(grand),
        *subject_problems(grand, single),
        *event_problems(grand),
        *stream_problems(grand),
    ]
    assert not problems, "\n".join(problems)
    # judged as the single process: known to differ in some runs (KNOWN_DIFFERENCES)
    differ = [*value_problems(grand, single), *anomaly_problems(grand, single)]
    if differ:
        pytest.xfail(KNOWN_DIFFERENCES + "\n" + "\n".join(differ))
