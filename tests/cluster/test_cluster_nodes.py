"""An ingestion node and two writer processes over a real 3-node NATS cluster: every acked
point reaches InfluxDB once, through a NATS server killed and a writer killed mid-run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import nats

from devkit import localstack
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.cluster.conftest import (
    Devices,
    cluster,
    node_config,
    start_node,
    stop_node,
    wait_stored,
)

TOTAL = 600
DEVICES = 6


async def when(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.02)


async def stream_leader(servers: list[localstack.NatsServer], stream: str) -> str:
    nc = await nats.connect(servers=[s.url for s in servers if s.running])
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader
        return f"nats-{info.cluster.leader}"
    finally:
        await nc.close()


async def ingest_node(
    tmp_path: Path,
    influx_url: str,
    database: str,
    servers: list[localstack.NatsServer],
    **extra: object,
) -> Gateway:
    config = node_config(
        tmp_path / "ingest",
        influx_url,
        database,
        cluster(servers, ["ingest"], node="ingest", **extra),
    )
    gw = Gateway(load_config(config))
    await gw.start()
    return gw


async def test_nats_server_killed_during_load_devices_stay_acked_nothing_lost(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    writers = [
        start_node(
            node_config(
                tmp_path / f"w{k}", influx.url, database, cluster(nats, ["writer"], node=f"w{k}")
            ),
            tmp_path / f"w{k}.log",
        )
        for k in (1, 2)
    ]
    gw = await ingest_node(tmp_path, influx.url, database, nats)
    try:
        assert gw.log is not None and gw.stream_writer is None
        devices = Devices(gw.hj212.port)
        pumps = [asyncio.create_task(devices.run(TOTAL, k, DEVICES)) for k in range(DEVICES)]
        await when(lambda: len(devices.acked) >= TOTAL // 3)
        leader = await stream_leader(nats, "POLLUTION_POINTS")
        victim = next(s for s in nats if s.name == leader)
        await asyncio.to_thread(victim.kill)  # SIGKILL the stream's leader
        acked_at_kill = len(devices.acked)
        await asyncio.gather(*pumps)
        # two servers of three are a quorum: devices went on being acknowledged
        assert len(devices.acked) == TOTAL
        assert len(devices.acked) > acked_at_kill
        values = await wait_stored(influx.url, database, devices.acked)
        assert devices.acked <= set(values), sorted(devices.acked - set(values))[:10]
        assert len(values) == len(set(values))  # each acked upload once, as one point
        assert gw.log.published > 0
    finally:
        await gw.shutdown()
        codes = [stop_node(w) for w in writers]
    assert codes == [0, 0], [(tmp_path / f"w{k}.log").read_text()[-3000:] for k in (1, 2)]


async def test_writer_killed_mid_run_the_other_drains_the_rest(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    logs = [tmp_path / f"w{k}.log" for k in (1, 2)]
    writers = [
        start_node(
            node_config(
                tmp_path / f"w{k}", influx.url, database, cluster(nats, ["writer"], node=f"w{k}")
            ),
            logs[k - 1],
        )
        for k in (1, 2)
    ]
    gw = await ingest_node(tmp_path, influx.url, database, nats)
    try:
        devices = Devices(gw.hj212.port)
        pumps = [asyncio.create_task(devices.run(TOTAL, k, DEVICES)) for k in range(DEVICES)]
        await when(lambda: len(devices.acked) >= TOTAL // 3)
        writers[0].kill()  # SIGKILL: whatever it fetched and did not ack comes back
        writers[0].wait(10)
        acked_at_kill = len(devices.acked)
        await asyncio.gather(*pumps)
        assert len(devices.acked) == TOTAL > acked_at_kill
        values = await wait_stored(influx.url, database, devices.acked)
        assert devices.acked <= set(values), sorted(devices.acked - set(values))[:10]
        assert len(values) == len(set(values))
        assert writers[1].poll() is None  # the survivor wrote what came after
    finally:
        await gw.shutdown()
        code = stop_node(writers[1])
        stop_node(writers[0])
    assert code == 0, logs[1].read_text()[-3000:]
