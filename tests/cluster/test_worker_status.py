"""What a rule worker writes besides anomalies: a real 3-node NATS cluster, PostgreSQL,
InfluxDB and Mosquitto; an ingestion node (with a writer) and a rule worker in this process.

The test holds half the partitions' leases itself (a worker that writes nothing), so the
worker owns the other half: a banned truck's `allowed` verdict, the `device_status` points and
the status snapshots appear for the enterprises of its partitions and for no other. Once the
test lets its leases go, the worker takes those partitions and their replay writes their
verdicts and status; a successor whose status interval is an hour writes every snapshot once
its replay is done. A partition's wall-clock rules wait for its replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import nats
from nats import connect as nats_connect
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.cluster.config import ClusterSection
from gateway.cluster.partitions import _event_json, encode, ensure_rules_stream, partition_of
from gateway.cluster.pg_status import PgStatus
from gateway.config import load_config
from gateway.model import DeviceEvent
from gateway.supervisor import Gateway
from tests.cluster.conftest import cluster
from tests.conftest import influx_rows, write_config
from tests.frames import qn_for, upload

PARTITIONS = 4
BUCKET = "test_status_leases"
TTL_S = 3.0
PREFIX = "tstatus"


def enterprises() -> list[str]:
    """One enterprise id per partition, in partition order."""
    by_part: dict[int, str] = {}
    for n in range(1, 100):
        by_part.setdefault(partition_of(f"E{n}", PARTITIONS), f"E{n}")
    assert len(by_part) == PARTITIONS
    return [by_part[p] for p in range(PARTITIONS)]


def mn_of(ent: str) -> str:
    return f"230402810{int(ent[1:]):05d}"


def registry(ents: list[str]) -> str:
    """A data logger, a meter (a reading expected every 10 s) and a gate used day and night
    per enterprise; heavy diesel trucks of 国4 and below banned from all of them."""
    blocks = [
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

  [[enterprises.meters]]
  id = "PM1"
  role = "production"
  line = "L1"
  report_interval_s = 10

  [[enterprises.gates]]
  id = "G1"
  quiet_hours = []
"""
        for ent in ents
    ]
    standing = f"""
[[transport_standing]]
name = "清洁运输"
since = "2026-01-01"
enterprises = {json.dumps(ents)}
"""
    return "".join(blocks) + standing


def gateway(
    tmp_path: Path,
    name: str,
    influx: localstack.ManagedProcess,
    database: str,
    reg: str,
    servers: list[localstack.NatsServer],
    role: list[str],
    **sections: dict[str, Any],
) -> Gateway:
    section = cluster(
        servers,
        role,
        node=name,
        rule_workers=True,
        partitions=PARTITIONS,
        lease_bucket=BUCKET,
        lease_ttl_s=TTL_S,
        lease_renew_s=0.5,
        **sections.pop("cluster", {}),
    )
    path = write_config(
        tmp_path / name,
        influx.url,
        database,
        reg,
        cluster=section,
        api={"enabled": False},
        **sections,
    )
    return Gateway(load_config(path))


class Leases:
    """Another worker that holds `parts` and judges nothing: its heartbeat and leases."""

    def __init__(self, servers: list[str], parts: list[int]) -> None:
        self.servers = servers
        self.parts = parts
        self.kv: KeyValue | None = None
        self._nc: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._nc = nc = await nats.connect(servers=self.servers, connect_timeout=2)
        # the bucket as the workers make it (the same configuration)
        self.kv = await nc.jetstream().create_key_value(
            bucket=BUCKET, ttl=TTL_S, history=1, replicas=3
        )
        await self._renew()
        self._task = asyncio.create_task(self._run())

    async def _renew(self) -> None:
        assert self.kv is not None
        await self.kv.put("w.other", b"1")
        for part in self.parts:
            await self.kv.put(f"p.{part}", b"other")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            await self._renew()

    async def release(self) -> None:
        """Stop renewing and delete them, as a worker that stops does."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        assert self.kv is not None
        for part in self.parts:
            await self.kv.delete(f"p.{part}")
        await self.kv.delete("w.other")

    async def close(self) -> None:
        if self._task is not None:
            await self.release()
        if self._nc is not None:
            await self._nc.close()


async def wait_for(check: Callable[[], Any], what: str, limit_s: float = 60.0) -> None:
    """A bound against hanging, not a timing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.2)


async def send_upload(port: int, ent: str) -> None:
    """One hourly record of `ent`'s data logger, sent until acknowledged."""
    client = await DeviceClient.connect("127.0.0.1", port)
    try:
        qn = qn_for(int(ent[1:]))
        frame = upload(
            mn=mn_of(ent), qn=qn, data_time=datetime(2026, 4, 1, 8), values={"w01018": 20.0}
        )
        while True:
            await client.send(frame)
            try:
                while (reply := await client.read_frame(15)).qn != qn or reply.cn != "9014":
                    pass
                return
            except TimeoutError:
                continue
    finally:
        await client.close()


async def send_truck(port: int, ent: str) -> None:
    """A heavy diesel truck of 国四 entering `ent`'s gate (banned by the standing rule)."""
    record = {
        "time": "2026-04-01 09:30:00",
        "direction": "进",
        "plate": f"冀A{int(ent[1:]):05d}",
        "emission_stage": "国四",
        "fuel": "柴油",
        "vehicle_class": "重型货车",
    }
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(f"{PREFIX}/gate/{ent}/G1", json.dumps(record), qos=1)


def passages(url: str, db: str) -> dict[str, dict[str, Any]]:
    """enterprise -> its passage row (plate and verdict)."""
    try:
        rows = influx_rows(url, db, "SELECT plate, allowed FROM vehicle_passage GROUP BY *")
    except localstack.LocalStackError:  # no database yet
        return {}
    assert len(rows) == len({r["enterprise"] for r in rows})  # one point per passage
    return {r["enterprise"]: r for r in rows}


def statuses(url: str, db: str) -> list[dict[str, Any]]:
    try:
        return influx_rows(url, db, "SELECT * FROM device_status GROUP BY *")
    except localstack.LocalStackError:
        return []


def online(status: PgStatus, ent: str, kind: str = "hj212") -> bool | None:
    answer = status.enterprise_status(ent)
    assert answer is not None
    value: bool | None = next(d["online"] for d in answer["devices"] if d["kind"] == kind)
    return value


async def test_a_worker_writes_verdicts_status_and_snapshots_of_its_partitions_only(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
    pg_dsn: str,
) -> None:
    ents = enterprises()
    reg = registry(ents)
    theirs, ours = ents[:2], ents[2:]  # the test's leases: partitions 0 and 1
    others = Leases([s.url for s in nats], [0, 1])
    ingest = gateway(
        tmp_path,
        "ingest",
        influx,
        database,
        reg,
        nats,
        ["ingest", "writer"],
        mqtt={
            "enabled": True,
            "port": mosquitto.port,
            "topic_prefix": PREFIX,
            "client_id": "gw-status-ingest",
            "reconnect_max_s": 1.0,
        },
    )
    worker = gateway(
        tmp_path,
        "rules",
        influx,
        database,
        reg,
        nats,
        ["rules"],
        cluster={"postgres_dsn": pg_dsn},
        rules={"status_interval_s": 1.0},
    )
    started: list[Gateway] = []
    status: PgStatus | None = None
    try:
        await others.start()
        for gw in (worker, ingest):
            await gw.start()
            started.append(gw)
        assert worker.rule_worker is not None and ingest.mqtt is not None
        rw = worker.rule_worker
        await wait_for(lambda: sorted(rw.owned) == [2, 3], "the worker owns partitions 2 and 3")
        await asyncio.wait_for(ingest.mqtt.connected.wait(), 10)
        status = PgStatus(pg_dsn, worker.registry, status_interval_s=1.0)

        for ent in ents:
            await send_upload(ingest.hj212.port, ent)
            await send_truck(mosquitto.port, ent)

        # the status of the worker's enterprises: device online, in PostgreSQL
        pg = status
        await wait_for(lambda: all(online(pg, e) for e in ours), "snapshots: devices online")
        mine = pg.enterprise_status(ours[0])
        assert mine is not None and mine["stale"] is False
        assert mine["devices_online"] == 2  # the data logger and the gate (the meter sent none)
        gate = next(d for d in mine["devices"] if d["kind"] == "gate")
        assert gate["online"] is True and gate["last_seen"] is not None
        # the verdicts of its enterprises' trucks; the others' passages stored, not judged
        url = influx.url

        def judged() -> bool:
            rows = passages(url, database)
            return set(rows) == set(ents) and all(rows[e]["allowed"] is False for e in ours)

        await wait_for(lambda: asyncio.to_thread(judged), "the worker's verdicts in InfluxDB")
        rows = await asyncio.to_thread(passages, url, database)
        assert all(rows[e]["allowed"] is None for e in theirs)
        assert rows[ours[0]]["plate"] == f"冀A{int(ours[0][1:]):05d}"  # merged into the passage

        # device_status points: online and completeness of its enterprises' devices
        def written() -> bool:
            got = statuses(url, database)
            return any(
                r["enterprise"] == e and r["kind"] == "hj212" and r["online"] is True
                for r in got
                for e in ours
            ) and {r["enterprise"] for r in got} >= set(ours)

        await wait_for(lambda: asyncio.to_thread(written), "device_status points in InfluxDB")
        got = await asyncio.to_thread(statuses, url, database)
        assert {r["enterprise"] for r in got} == set(ours)  # none of the partitions not owned
        # a meter that sent nothing would have a completeness point of 0 in any engine
        assert any(r["kind"] == "meter" and r["completeness"] == 0.0 for r in got)

        # snapshots of its enterprises only, written by it
        snapshot_rows = pg.snapshots.rows()
        assert {ent for ent, _, _ in snapshot_rows} == set(ours)
        assert {node for _, node, _ in snapshot_rows} == {rw.id}
        unknown = pg.enterprise_status(theirs[0])
        assert unknown is not None and unknown["stale"] is True and unknown["as_of"] is None
        assert {d["online"] for d in unknown["devices"]} == {None}
        assert pg.enterprise_status("E-none") is None
        listed = pg.devices("online")
        assert {(d["enterprise"], d["kind"]) for d in listed} == {
            (e, k) for e in ours for k in ("hj212", "gate")
        }
        assert {d["enterprise"] for d in pg.devices("unknown")} == set(ents)  # meters, theirs
        # three intervals later without a write: stale, shown as unknown
        later = PgStatus(
            pg_dsn,
            worker.registry,
            status_interval_s=1.0,
            clock=lambda: datetime.now(UTC) + timedelta(seconds=10),
        )
        try:
            old = later.enterprise_status(ours[0])
            assert old is not None and old["stale"] is True and old["as_of"] is not None
            assert old["devices_online"] is None
            assert {d["online"] for d in old["devices"]} == {None}
            kept = next(d for d in old["devices"] if d["kind"] == "hj212")
            assert kept["last_seen"] is not None
            assert later.devices("online") == []
        finally:
            later.close()

        # the test's leases let go: the worker takes partitions 0 and 1, and their replay
        # writes the verdicts and the status of those enterprises
        await others.release()
        await wait_for(lambda: sorted(rw.owned) == [0, 1, 2, 3], "the worker owns every one")

        def replayed() -> bool:
            rows = passages(url, database)
            return all(rows[e]["allowed"] is False for e in ents)

        await wait_for(lambda: asyncio.to_thread(replayed), "the replayed verdicts in InfluxDB")
        await wait_for(lambda: all(online(pg, e) for e in ents), "every enterprise online")
        assert {ent for ent, _, _ in pg.snapshots.rows()} == set(ents)

        # a successor that writes the status once an hour: its snapshots come with the end
        # of its replay, and the replay's contact says the devices are online
        await worker.shutdown()
        started.remove(worker)
        successor = gateway(
            tmp_path,
            "rules-2",
            influx,
            database,
            reg,
            nats,
            ["rules"],
            cluster={"postgres_dsn": pg_dsn},
            rules={"status_interval_s": 3600.0},
        )
        await successor.start()
        started.append(successor)
        assert successor.rule_worker is not None
        heir = successor.rule_worker.id

        await wait_for(
            lambda: {node for _, node, _ in pg.snapshots.rows()} == {heir},
            "the successor's snapshots after its replay",
        )
        assert all(online(pg, e) for e in ents)
        rows = await asyncio.to_thread(passages, url, database)  # one point per passage
        assert all(rows[e]["allowed"] is False for e in ents)
    finally:
        for gw in reversed(started):
            await gw.shutdown()
        await others.close()
        if status is not None:
            status.close()


async def test_wall_clock_rules_wait_for_the_replay(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
    pg_dsn: str,
) -> None:
    """Three hours of a logger's contact in the rules stream, the last a minute ago: replayed
    by a worker that ticks every 20 ms, they raise no `device_offline` (a tick in the middle
    of the replay would find the contact replayed so far hours old)."""
    ent = enterprises()[0]
    section = cluster(
        nats, ["rules"], rule_workers=True, partitions=PARTITIONS, postgres_dsn=pg_dsn
    )
    cfg = ClusterSection.model_validate(section)
    now = datetime.now(UTC)
    count = 2000
    step = timedelta(hours=3) / count
    nc = await nats_connect(servers=[s.url for s in nats], connect_timeout=2)
    try:
        js = nc.jetstream()
        await ensure_rules_stream(js, cfg)
        subject = cfg.rules_subject(partition_of(ent, PARTITIONS))
        for start in range(0, count, 100):
            await asyncio.gather(
                *(
                    js.publish(
                        subject,
                        encode(
                            [
                                (
                                    "e",
                                    _event_json(
                                        DeviceEvent(
                                            "contact",
                                            f"mn:{mn_of(ent)}",
                                            now - timedelta(hours=3, minutes=1) + (i + 1) * step,
                                            enterprise=ent,
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                    for i in range(start, start + 100)
                )
            )
    finally:
        await nc.close()
    path = write_config(
        tmp_path / "rules",
        influx.url,
        database,
        registry([ent]),
        cluster=section,
        rules={"tick_s": 0.02, "status_interval_s": 3600.0},
        api={"enabled": False},
    )
    worker = Gateway(load_config(path))
    status = PgStatus(pg_dsn, worker.registry, status_interval_s=3600.0)
    try:
        await worker.start()
        assert worker.rule_worker is not None and worker.anomalies is not None
        # its snapshot is written once the replay is done: the logger online
        await wait_for(lambda: {e for e, _, _ in status.snapshots.rows()} == {ent}, "the snapshot")
        assert online(status, ent) is True
        part = worker.rule_worker.owned[partition_of(ent, PARTITIONS)]
        assert part.replayed and part.until > 0
        _, found = worker.anomalies.query(type_="device_offline")
        assert found == 0
    finally:
        await worker.shutdown()
        status.close()
