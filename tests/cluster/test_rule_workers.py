"""Rule workers over enterprise partitions: a real 3-node NATS cluster, PostgreSQL and
InfluxDB; one ingestion node (with a writer) and two rule workers as processes. The partitions
split between the workers; frames of several enterprises raise `values_pinned` and
`over_limit`, each once in the shared store; one worker is killed (SIGKILL), the other takes
all its partitions and judges the later frames, and no anomaly is lost or raised twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.anomalies.store import AnomalyStore
from gateway.cluster.config import ClusterSection
from gateway.cluster.partitions import (
    RulesPublisher,
    _event_json,
    _point,
    decode,
    decode_stamped,
    encode,
    partition_of,
)
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.cluster.processes import NodeProcess, check_node, node_process
from gateway.config import load_config
from gateway.model import DeviceEvent, Point
from tests.cluster.conftest import cluster, start_node, stop_node
from tests.conftest import write_config
from tests.frames import qn_for, upload

PARTITIONS = 4
BUCKET = "test_rule_leases"
BASE = datetime(2026, 4, 1, 0, 0)  # the devices' clocks: Beijing time
CST = timezone(timedelta(hours=8))


def enterprises() -> list[str]:
    """Enterprise ids covering every partition, two of some."""
    chosen: list[str] = []
    seen: set[int] = set()
    for n in range(1, 200):
        ent = f"E{n}"
        part = partition_of(ent, PARTITIONS)
        if part not in seen or len(chosen) < PARTITIONS + 2:
            chosen.append(ent)
            seen.add(part)
        if len(seen) == PARTITIONS and len(chosen) >= PARTITIONS + 2:
            return chosen
    raise AssertionError("no ids cover the partitions")


def mn_of(ent: str) -> str:
    return f"230402810{int(ent[1:]):05d}"


def registry(ents: list[str]) -> str:
    blocks = []
    for ent in ents:
        blocks.append(
            f"""
[[enterprises]]
id = "{ent}"
name = "Plant {ent}"

  [[enterprises.outlets]]
  id = "DW001"
  mn = "{mn_of(ent)}"
  password = "123456"
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50, unit = "mg/L" }}
"""
        )
    return "".join(blocks)


def hours(start: int) -> list[tuple[int, float]]:
    """(hour, COD) from `start`: 12 hours held just under the limit (values_pinned from
    `start`), one over it (over_limit, which ends the pinned run), one well under (closes)."""
    pinned = [(start + h, 45.0 if h % 2 else 45.2) for h in range(12)]
    return [*pinned, (start + 12, 80.0), (start + 13, 20.0)]


def expected(ent: str, starts: list[int]) -> set[tuple[str, str, datetime]]:
    out = set()
    for start in starts:
        first = (BASE + timedelta(hours=start)).replace(tzinfo=CST)
        out.add(("values_pinned", ent, first))
        out.add(("over_limit", ent, first + timedelta(hours=12)))
    return out


async def send_hours(port: int, ent: str, rows: list[tuple[int, float]], qn_base: int) -> None:
    """One device of `ent`: each hourly upload sent (again, until acknowledged)."""
    client = await DeviceClient.connect("127.0.0.1", port)
    try:
        for n, (hour, value) in enumerate(rows):
            qn = qn_for(qn_base + n)
            frame = upload(
                mn=mn_of(ent),
                qn=qn,
                data_time=BASE + timedelta(hours=hour),
                values={"w01018": value},
            )
            while True:
                await client.send(frame)
                try:
                    while (reply := await client.read_frame(15)).qn != qn or reply.cn != "9014":
                        pass
                    break
                except TimeoutError:
                    continue
    finally:
        await client.close()


def found(dsn: str) -> list[tuple[str, str, datetime, str]]:
    """(type, enterprise, start, state) of every anomaly in the shared store."""
    store = AnomalyStore(PgAnomalies(dsn))
    try:
        rows, _ = store.query(limit=1000)
    finally:
        store.close()
    return [(a.type, a.enterprise, a.started_at, a.state) for a in rows]


async def owners(servers: list[str]) -> dict[int, str]:
    """partition -> the worker id holding its lease."""
    nc = await nats.connect(servers=servers, connect_timeout=2)
    try:
        try:
            kv = await nc.jetstream().key_value(BUCKET)
        except BucketNotFoundError:  # no worker made it yet
            return {}
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        out = {}
        for key in keys:
            if key.startswith("p."):
                try:
                    entry = await kv.get(key)
                except KeyNotFoundError:  # given back since it was listed
                    continue
                out[int(key[2:])] = (entry.value or b"").decode()
        return out
    finally:
        await nc.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 120.0) -> None:
    """A bound against hanging, not a timing."""
    deadline = time.monotonic() + limit_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.25)


def section(servers: list[localstack.NatsServer], role: list[str], dsn: str, node: str) -> Any:
    return cluster(
        servers,
        role,
        node=node,
        rule_workers=True,
        partitions=PARTITIONS,
        lease_bucket=BUCKET,
        lease_ttl_s=3.0,
        lease_renew_s=0.5,
        postgres_dsn=dsn,
    )


async def test_workers_split_partitions_and_one_takes_over_a_killed_one(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
    pg_dsn: str,
) -> None:
    ents = enterprises()
    reg = registry(ents)
    port = localstack.free_port()
    urls = [s.url for s in nats]
    ingest_cfg = write_config(
        tmp_path / "ingest",
        influx.url,
        database,
        reg,
        cluster=section(nats, ["ingest", "writer"], pg_dsn, "in"),
        hj212={"listen": f"127.0.0.1:{port}", "idle_timeout_s": 60},
        api={"enabled": False},
    )
    worker_cfgs = [
        write_config(
            tmp_path / f"w{k}",
            influx.url,
            database,
            reg,
            cluster=section(nats, ["rules"], pg_dsn, f"w{k}"),
            api={"enabled": False},
        )
        for k in range(2)
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_node(ingest_cfg, tmp_path / "ingest.log"))
        procs += [start_node(c, tmp_path / f"w{k}.log") for k, c in enumerate(worker_cfgs)]

        async def split() -> bool:
            held = list((await owners(urls)).values())
            mine = [sum(w.startswith(f"w{k}-") for w in held) for k in range(2)]
            return len(held) == PARTITIONS and mine == [PARTITIONS // 2] * 2

        await until(split, "the partitions split between the two workers")
        by_part = await owners(urls)
        victim = 0
        assert {by_part[partition_of(e, PARTITIONS)][:3] for e in ents} == {"w0-", "w1-"}

        await until(lambda: _listening(port), "the ingestion node listens")
        # the first day, and the start of a second pinned run that goes on after the kill:
        # the survivor raises it only if the replay rebuilt the hours before the kill
        second = hours(14)
        await asyncio.gather(
            *(send_hours(port, e, hours(0) + second[:6], 1000 * i) for i, e in enumerate(ents))
        )
        want = set().union(*(expected(e, [0]) for e in ents))

        async def judged(want: set[tuple[str, str, datetime]]) -> bool:
            rows = await asyncio.to_thread(found, pg_dsn)
            return {(t, e, s) for t, e, s, state in rows if state == "closed"} >= want

        await until(lambda: judged(want), "every anomaly of the first day in the store")

        procs[1 + victim].send_signal(signal.SIGKILL)
        procs[1 + victim].wait()
        survivor = f"w{1 - victim}-"

        async def taken() -> bool:
            held = await owners(urls)
            return len(held) == PARTITIONS and all(w.startswith(survivor) for w in held.values())

        await until(taken, "the survivor owns every partition")

        await asyncio.gather(
            *(send_hours(port, e, second[6:], 1000 * i + 500) for i, e in enumerate(ents))
        )
        want |= set().union(*(expected(e, [14]) for e in ents))
        await until(lambda: judged(want), "every anomaly of the later frames in the store")
    finally:
        for proc in procs:
            stop_node(proc)
    rows = await asyncio.to_thread(found, pg_dsn)
    got = [(t, e, s) for t, e, s, _ in rows]
    assert len(got) == len(set(got))  # no anomaly twice (the ids come from type, subject, start)
    assert set(got) == want  # none lost, none made up by a replay
    assert all(state == "closed" for *_, state in rows)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def test_partition_of_is_stable_and_spreads() -> None:
    assert partition_of("E1", 16) == zlib.crc32(b"E1") % 16
    assert len({partition_of(f"E{n}", 16) for n in range(200)}) == 16


def test_messages_round_trip_points_and_events() -> None:
    point = Point("emission", (("enterprise", "E1"), ("mn", "X")), (("avg", 45.5), ("n", 3)), 7)
    event = DeviceEvent("contact", "mn:X", datetime.fromisoformat("2026-04-01T00:00:00+00:00"))
    back = decode(encode([("p", [_point(point)]), ("e", _event_json(event))]))
    assert back == [[point], event]
    stamped = encode([("p", [_point(point)], 11), ("e", _event_json(event), 12)])
    assert decode_stamped(stamped) == [([point], 11), (event, 12)]
    assert decode_stamped(encode([("e", _event_json(event))])) == [(event, None)]  # no stamp


async def test_the_publisher_stamps_each_entry_when_its_node_took_it() -> None:
    point = Point("power", (("enterprise", "E1"), ("meter", "M1")), (("kwh", 1.0),), 7)
    publisher = RulesPublisher(ClusterSection(rule_workers=True), node="n")
    before = time.time_ns()
    publisher.on_points([point])
    publisher.on_device_event(DeviceEvent("contact", "mn:X", datetime.now(UTC), "E1"))
    ((entries),) = publisher._queued.values()
    assert [e[0] for e in entries] == ["p", "e"]
    assert before <= entries[0][2] <= entries[1][2] <= time.time_ns()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"role": ["rules"]}, "role rules needs rule_workers = true"),
        ({"rule_workers": True, "rules_prefix": "pollution", "subjects": [">"]}, "falls under"),
        ({"rule_workers": True, "lease_ttl_s": 2.0, "lease_renew_s": 1.5}, "at most half"),
        ({"rule_workers": True, "replay_s": 10.0, "rules_max_age_s": 5.0}, "replay_s"),
        ({"partitions": 0}, "greater than or equal to 1"),
        ({"rules_stream": "a b"}, "letters, digits"),
        ({"lease_bucket": "a.b"}, "letters, digits"),
    ],
)
def test_rule_worker_settings_are_checked(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterSection.model_validate({"enabled": True, **extra})


def test_node_processes_of_rule_workers(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "http://127.0.0.1:1",
        "db",
        cluster={"enabled": True, "rule_workers": True, "node": "n"},
        metrics={"enabled": True, "listen": "127.0.0.1:9100"},
    )
    loaded = load_config(path)
    assert any("postgres_dsn" in p for p in check_node(loaded, 1, 1, 2))
    worker = NodeProcess.parse("rules:1:2:1")
    assert worker == NodeProcess("rules", 1, 2, 1) and worker.argument() == "rules:1:2:1"
    assert worker.offset == 2 + 1 + 1
    with pytest.raises(ValueError):
        NodeProcess.parse("rules:0:1")
    cfg = node_process(loaded, worker).config
    assert cfg.cluster.role == ["rules"] and cfg.cluster.rules_worker
    assert cfg.rules.enabled and not cfg.api.enabled and not cfg.mqtt.enabled
    assert cfg.metrics.listen == "127.0.0.1:9104"
    ingest = node_process(loaded, NodeProcess("ingest", 0, 1)).config
    assert not ingest.rules.enabled  # the workers judge; ingestion publishes for them
