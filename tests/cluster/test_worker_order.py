"""A rule worker adds a meter's interval energy where all its readings meet: a real 3-node
NATS cluster and InfluxDB; an ingestion node (with a writer) and a rule worker in this process,
Mosquitto in front.

A meter's readings sent over MQTT reach InfluxDB without interval energy from the ingestion
node; the worker adds it (and the `running` judged from it) as a point of the same series and
time, which InfluxDB merges into the reading. Readings of a second meter published to the
rules stream in the other order than their nodes took them (as two ingestion nodes publish
them, a shared subscription handing them the meter in turn) get their energy as if taken in
time order. The worker's consumer, deleted on the server as when its server is lost, is made
again where it was: what comes after is judged. A reading that comes after a later one splits
that one's interval: both are stored with their own."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
from nats import connect as nats_connect
from nats.js.errors import KeyNotFoundError

from devkit import localstack
from gateway.cluster.config import ClusterSection
from gateway.cluster.partitions import _point, encode, partition_of
from gateway.model import Point, to_ns
from gateway.supervisor import Gateway
from tests.cluster.test_worker_status import (
    BUCKET,
    PARTITIONS,
    PREFIX,
    enterprises,
    gateway,
    registry,
    wait_for,
)
from tests.conftest import influx_rows

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 4, 1, 8, 0, tzinfo=CST)


def energy_rows(url: str, db: str, meter: str) -> dict[str, dict[str, Any]]:
    """time -> the row of `meter`'s power points."""
    query = f"SELECT kwh, energy_kwh, running FROM power WHERE meter = '{meter}'"
    try:
        return {r["time"][:19]: r for r in influx_rows(url, db, query)}
    except localstack.LocalStackError:  # no database yet
        return {}


def utc(moment: datetime) -> str:
    """The instant as InfluxDB writes it, to the second."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"


def rules_message(ent: str, meter: str, at: datetime, kwh: float, stamp: int) -> bytes:
    """One power reading of `meter` as an ingestion node publishes it for the rules, taken
    at `stamp` (ns)."""
    point = Point(
        "power",
        (("enterprise", ent), ("meter", meter), ("role", "production"), ("line", "L1")),
        (("kwh", kwh),),
        to_ns(at),
    )
    return encode([("p", [_point(point)], stamp)])


async def test_a_worker_adds_interval_energy_in_each_meters_order(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    ents = enterprises()
    reg = registry(ents)
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
            "client_id": "gw-order-ingest",
            "reconnect_max_s": 1.0,
        },
    )
    worker = gateway(tmp_path, "rules", influx, database, reg, nats, ["rules"])
    started: list[Gateway] = []
    url = influx.url
    ent = ents[0]
    section = ClusterSection(partitions=PARTITIONS)
    subject = section.rules_subject(partition_of(ent, PARTITIONS))
    try:
        for gw in (worker, ingest):
            await gw.start()
            started.append(gw)
        assert worker.rule_worker is not None and ingest.mqtt is not None
        rw = worker.rule_worker
        await wait_for(lambda: len(rw.owned) == PARTITIONS, "the worker owns every partition")
        await asyncio.wait_for(ingest.mqtt.connected.wait(), 10)

        # in order over MQTT: the ingestion node stores them without energy, the worker adds it
        sent = [(T0, 100.0), (T0 + timedelta(minutes=5), 103.5), (T0 + timedelta(minutes=10), 110)]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for at, kwh in sent:
                record = {"time": at.isoformat(), "kwh": kwh}
                await client.publish(f"{PREFIX}/power/{ent}/PM1", json.dumps(record), qos=1)

        def merged() -> bool:
            rows = energy_rows(url, database, "PM1")
            return len(rows) == 3 and rows[utc(sent[2][0])]["energy_kwh"] is not None

        await wait_for(lambda: asyncio.to_thread(merged), "PM1's energy merged in InfluxDB")
        rows = await asyncio.to_thread(energy_rows, url, database, "PM1")
        got = [(rows[utc(at)]["kwh"], rows[utc(at)]["energy_kwh"]) for at, _ in sent]
        assert got == [(100.0, None), (103.5, 3.5), (110.0, 6.5)]
        # 3.5 kWh in 5 minutes is 42 kW, above the meter's default on-threshold
        assert [rows[utc(at)]["running"] for at, _ in sent] == [None, True, True]

        # PM2's readings published for the rules in the other order than their time
        nc = await nats_connect(servers=[s.url for s in nats], connect_timeout=2)
        try:
            js = nc.jetstream()
            late = [(T0 + timedelta(minutes=5), 52.0), (T0, 50.0)]
            taken = time.time_ns()
            for (at, kwh), stamp in zip(late, (taken + 1, taken), strict=True):
                await js.publish(subject, rules_message(ent, "PM2", at, kwh, stamp))

            def judged_in_order() -> bool:
                return utc(late[0][0]) in energy_rows(url, database, "PM2")

            await wait_for(lambda: asyncio.to_thread(judged_in_order), "PM2's energy")
            rows = await asyncio.to_thread(energy_rows, url, database, "PM2")
            # judged as heard, the 08:05 reading would have been the first, 08:00 a late one
            assert rows[utc(late[0][0])]["energy_kwh"] == 2.0
            assert utc(T0) not in rows  # the first reading: nothing to add

            # the worker's consumer lost on the server: made again where it was
            consumers = await js.consumers_info(section.rules_stream)
            (lost,) = [c for c in consumers if c.config.filter_subject == subject]
            await js.delete_consumer(section.rules_stream, lost.name)
            after = T0 + timedelta(minutes=10)
            await js.publish(subject, rules_message(ent, "PM2", after, 55.0, time.time_ns()))

            def restarted() -> bool:
                return utc(after) in energy_rows(url, database, "PM2")

            await wait_for(lambda: asyncio.to_thread(restarted), "judged after the loss")
            rows = await asyncio.to_thread(energy_rows, url, database, "PM2")
            assert rows[utc(after)]["energy_kwh"] == 3.0  # from 08:05, judged once before

            # one that comes after a later one splits its interval: both stored again
            split = T0 + timedelta(minutes=7, seconds=30)
            await js.publish(subject, rules_message(ent, "PM2", split, 53.5, time.time_ns()))

            def corrected() -> bool:
                rows = energy_rows(url, database, "PM2")
                return utc(split) in rows and rows[utc(after)]["energy_kwh"] == 1.5

            await wait_for(lambda: asyncio.to_thread(corrected), "08:10 stored again")
            rows = await asyncio.to_thread(energy_rows, url, database, "PM2")
            assert [rows[utc(t)]["energy_kwh"] for t in (late[0][0], split, after)] == [
                2.0,
                1.5,
                1.5,
            ]
        finally:
            await nc.close()
    finally:
        for gw in reversed(started):
            await gw.shutdown()


async def test_a_lapsed_lease_nobody_took_is_taken_again_with_its_engine(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    """A lease gone unrenewed (here deleted, as its TTL does while NATS elects a leader) and
    free is taken again by its worker, which keeps the partition's engine; one another worker
    holds meanwhile is lost, and the partition dropped."""
    reg = registry(enterprises())
    worker = gateway(tmp_path, "rules", influx, database, reg, nats, ["rules"])
    nc = await nats_connect(servers=[s.url for s in nats], connect_timeout=2)
    await worker.start()
    try:
        assert worker.rule_worker is not None
        rw = worker.rule_worker
        await wait_for(lambda: len(rw.owned) == PARTITIONS, "the worker owns every partition")
        kv = await nc.jetstream().key_value(BUCKET)
        kept = rw.owned[0]
        await kv.delete("p.0")

        async def retaken() -> bool:
            try:
                entry = await kv.get("p.0")
            except KeyNotFoundError:
                return False
            return (entry.value or b"").decode() == rw.id

        await wait_for(retaken, "partition 0 taken again")
        assert rw.owned[0] is kept  # the same engine: no replay

        await kv.put("p.1", b"other")  # another worker's now
        await wait_for(lambda: 1 not in rw.owned, "partition 1 dropped")
        assert (await kv.get("p.1")).value == b"other"  # never overwritten
        assert sorted(rw.owned) == [0, 2, 3]
    finally:
        await worker.shutdown()
        await nc.close()
