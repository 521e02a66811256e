"""Back-fill across nodes: a real 3-node NATS cluster, PostgreSQL and InfluxDB; two ingestion
gateways and one rule worker in this process. A device on ingestion node B skips an hour; the
worker's data_gap asks, B sends the history request, the device back-fills over its socket
and the gap closes as back-filled. A request for an MN no node holds is counted as such."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from adapters.hj212.builder import execution_answer, request_answer
from adapters.hj212.cp import parse_cp
from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.cluster.commands import decode, encode
from gateway.cluster.config import ClusterSection
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.cluster.conftest import cluster
from tests.conftest import write_config
from tests.frames import MN_2025, MN_WATER, qn_for, upload

PARTITIONS = 4


def node(
    tmp_path: Path,
    name: str,
    influx: str,
    database: str,
    servers: list[localstack.NatsServer],
    role: list[str],
    **extra: Any,
) -> Gateway:
    section = cluster(
        servers,
        role,
        rule_workers=True,
        partitions=PARTITIONS,
        lease_ttl_s=3.0,
        lease_renew_s=0.5,
        node=name,
        **extra,
    )
    path = write_config(tmp_path / name, influx, database, cluster=section, api={"enabled": False})
    return Gateway(load_config(path))


def count(metric: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(metric, {"kind": "history", "outcome": outcome})
    return value or 0.0


async def wait_for(check: Any, timeout_s: float = 60.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def read_until(dev: DeviceClient, cn: str, timeout_s: float = 60.0) -> Any:
    """The next frame of command `cn` the platform sends (others skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        frame = await dev.read_frame(max(0.1, deadline - loop.time()))
        if frame.cn == cn:
            return frame


async def test_a_workers_backfill_request_reaches_the_device_through_its_node(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
    pg_dsn: str,
) -> None:
    a = node(tmp_path, "ingest-a", influx.url, database, nats, ["ingest", "writer"])
    b = node(tmp_path, "ingest-b", influx.url, database, nats, ["ingest"])
    worker = node(tmp_path, "rules", influx.url, database, nats, ["rules"], postgres_dsn=pg_dsn)
    started: list[Gateway] = []
    judged = REGISTRY.get_sample_value("cluster_rule_messages_total") or 0.0
    try:
        for gw in (worker, a, b):
            await gw.start()
            started.append(gw)
        assert worker.rule_worker is not None and worker.commands is not None
        assert worker.anomalies is not None
        assert await wait_for(lambda: len(worker.rule_worker.owned) == PARTITIONS)
        sent, idle = (
            count("cluster_commands_total", "sent"),
            count("cluster_commands_total", "not_connected"),
        )
        delivered = count("cluster_command_requests_total", "delivered")

        dev = await DeviceClient.connect("127.0.0.1", b.hj212.port)
        try:
            for i, hour in ((0, 8), (1, 10)):  # Beijing 08:00 and 10:00: 09:00 is missing
                await dev.send(
                    upload(
                        qn=qn_for(i), data_time=datetime(2026, 4, 6, hour), values={"w01018": 5.0}
                    )
                )
                assert (await read_until(dev, "9014")).qn == qn_for(i)
            request = await read_until(dev, "2061")  # asked by the worker, sent by node B
            assert request.mn == MN_WATER
            assert parse_cp(request.cp).params == {
                "BeginTime": "20260406090000",
                "EndTime": "20260406090000",
            }
            await dev.send(request_answer(request))
            await dev.send(
                upload(qn=qn_for(2), data_time=datetime(2026, 4, 6, 9), values={"w01018": 5.5})
            )
            assert (await read_until(dev, "9014")).qn == qn_for(2)
            await dev.send(execution_answer(request))

            def closed() -> bool:
                assert worker.anomalies is not None
                items, _ = worker.anomalies.query(type_="data_gap")
                return bool(items) and items[0].state == "closed"

            assert await wait_for(closed)
        finally:
            await dev.close()
        items, total = worker.anomalies.query(type_="data_gap")
        assert total == 1
        gap = items[0]
        assert gap.subject == f"mn:{MN_WATER}"
        assert gap.evidence["closed_as"] == "backfilled"
        assert gap.evidence["backfill_requested"] is True
        assert gap.evidence["filled"] == ["2026-04-06T01:00:00+00:00"]
        # node B sent it, node A holds no connection of the MN
        assert count("cluster_commands_total", "sent") == sent + 1
        assert count("cluster_commands_total", "not_connected") == idle + 1
        assert await wait_for(
            lambda: count("cluster_command_requests_total", "delivered") == delivered + 1
        )

        # an MN no node holds: both ingestion nodes count it, the worker hears no reply
        nobody = count("cluster_command_requests_total", "nobody")
        begin, end = datetime(2026, 4, 6, 1, tzinfo=UTC), datetime(2026, 4, 6, 2, tzinfo=UTC)
        assert worker.commands.request_backfill(MN_2025, "2061", begin, end) is True
        assert await wait_for(
            lambda: count("cluster_command_requests_total", "nobody") == nobody + 1
        )
        assert count("cluster_commands_total", "not_connected") == idle + 3
        assert count("cluster_commands_total", "sent") == sent + 1
        # found connected nowhere: not asked again for a while, and the rule is told so
        unreachable = count("cluster_command_requests_total", "unreachable")
        assert worker.commands.request_backfill(MN_2025, "2061", begin, end) is False
        assert count("cluster_command_requests_total", "unreachable") == unreachable + 1
        assert count("cluster_commands_total", "not_connected") == idle + 3

        # a second worker takes the partitions over and replays them: the gap is judged
        # again, but its request was made when the traffic was first judged
        replayed = count("cluster_command_requests_total", "replayed")
        events = [e.seq for e in worker.anomalies.events_of(gap.id)]
        await worker.shutdown()
        first = (REGISTRY.get_sample_value("cluster_rule_messages_total") or 0.0) - judged
        assert first > 0
        started.remove(worker)
        successor = node(
            tmp_path, "rules-2", influx.url, database, nats, ["rules"], postgres_dsn=pg_dsn
        )
        await successor.start()
        started.append(successor)
        assert successor.anomalies is not None
        assert await wait_for(
            lambda: count("cluster_command_requests_total", "replayed") == replayed + 1
        )
        assert await wait_for(  # the same messages, judged again
            lambda: REGISTRY.get_sample_value("cluster_rule_messages_total") == judged + 2 * first
        )
        assert count("cluster_commands_total", "sent") == sent + 1
        items, total = successor.anomalies.query(type_="data_gap")
        assert total == 1 and items[0].state == "closed"
        assert [e.seq for e in successor.anomalies.events_of(gap.id)] == events
    finally:
        for gw in reversed(started):
            await gw.shutdown()


def test_history_command_round_trips_and_refuses_what_it_is_not() -> None:
    begin, end = datetime(2026, 4, 6, 1, tzinfo=UTC), datetime(2026, 4, 6, 3, tzinfo=UTC)
    assert decode(encode(MN_WATER, "2061", begin, end)) == (MN_WATER, "2061", begin, end)
    for bad in (
        b"[]",
        b'{"mn": "X"}',
        b'{"mn": "X", "cn": "2061", "begin": "2026-04-06T01:00", "end": "2026-04-06T02:00"}',
        b'{"mn": "X", "cn": "2061", "begin": 1, "end": 2}',
    ):
        with pytest.raises(ValueError):
            decode(bad)


def test_command_timeout_must_be_positive() -> None:
    assert ClusterSection(command_timeout_s=0.5).command_timeout_s == 0.5
    with pytest.raises(ValidationError, match="command_timeout_s"):
        ClusterSection(command_timeout_s=0)
