"""What a killed ingestion node acknowledged reaches the rules: a real 3-node NATS cluster and
an ingestion node (rule workers on, so it publishes to the rules stream) as a process, killed
with SIGKILL while devices upload and the rules stream refuses its subjects (the node's
publisher retrying). Every upload a device was acknowledged for is in the rules stream: a
device is acknowledged only once the rules stream holds its points too."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from nats import connect as nats_connect
from nats.js.errors import NotFoundError

from devkit import localstack
from gateway.cluster.config import ClusterSection
from gateway.cluster.partitions import decode
from tests.cluster.conftest import Devices, cluster, start_node
from tests.cluster.test_rule_workers import _listening
from tests.conftest import write_config

TOTAL = 4_000
DEVICES = 5


async def rules_values(servers: list[str]) -> set[int]:
    """The value of every emission point in the rules stream (the upload's number)."""
    nc = await nats_connect(servers=servers, connect_timeout=2)
    try:
        js = nc.jetstream()
        stream = ClusterSection().rules_stream
        info = await js.stream_info(stream)
        found: set[int] = set()
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            assert msg.data is not None
            for entry in decode(msg.data):
                if isinstance(entry, list):
                    found |= {int(p.fields[0][1]) for p in entry if p.measurement == "emission"}
        return found
    finally:
        await nc.close()


async def test_an_acknowledged_upload_of_a_killed_node_is_in_the_rules_stream(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    port = localstack.free_port()
    servers = [s.url for s in nats]
    section = cluster(
        nats, ["ingest", "writer"], node="ingest", rule_workers=True, rules_prefix="tkill"
    )
    config = write_config(
        tmp_path / "ingest",
        influx.url,
        database,
        cluster=section,
        hj212={"listen": f"127.0.0.1:{port}", "idle_timeout_s": 60},
        api={"enabled": False},
    )
    proc = start_node(config, tmp_path / "ingest.log")
    try:
        devices = Devices(port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not await _listening(port):
            assert proc.poll() is None and loop.time() < deadline, "the node never listened"
            await asyncio.sleep(0.2)
        pumps = [asyncio.create_task(devices.run(TOTAL, k, DEVICES)) for k in range(DEVICES)]
        while len(devices.acked) < TOTAL // 4:
            assert loop.time() < deadline + 120, "uploads not acknowledged"
            await asyncio.sleep(0.01)
        # the rules stream stops taking the partitions' subjects: what comes now waits there
        await _rules_subjects(servers, ["tkill.none"])
        await asyncio.sleep(2.0)
        os.killpg(proc.pid, signal.SIGKILL)  # its publisher still retrying
        await _rules_subjects(servers, [f"{section['rules_prefix']}.rules.*"])
        devices.stop.set()
        await asyncio.gather(*pumps, return_exceptions=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    acked = set(devices.acked)
    assert len(acked) >= TOTAL // 4
    found = await rules_values(servers)
    assert acked <= found, (
        f"{len(acked - found)} acknowledged, not for the rules: {sorted(acked - found)[:10]}"
    )


async def _rules_subjects(servers: list[str], subjects: list[str]) -> None:
    nc = await nats_connect(servers=servers, connect_timeout=2)
    try:
        js = nc.jetstream()
        stream = ClusterSection().rules_stream
        config = (await js.stream_info(stream)).config
        config.subjects = subjects
        await js.update_stream(config)
    finally:
        await nc.close()
