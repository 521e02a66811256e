"""One node, many cores: the launcher runs two ingestion processes on one HJ 212 port and a
writer, over a real 3-node NATS cluster and a real InfluxDB; one ingestion process is killed
mid-run and started again, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.hj212.device import DeviceClient
from devkit import localstack
from devkit.process import metric
from gateway.cluster.processes import Launcher, NodeProcess, check_node, node_process
from gateway.config import load_config
from gateway.errors import ConfigError
from tests.cluster.conftest import ROOT, cluster, frame_for, wait_stored
from tests.conftest import write_config
from tests.frames import qn_for

DEVICES = 40
PER_DEVICE = 12
TOTAL = DEVICES * PER_DEVICE


def node_config(
    directory: Path, influx_url: str, database: str, section: dict[str, Any], **extra: Any
) -> tuple[Path, int, int]:
    """A node's config: HJ 212 on a fixed port with reuse_port, metrics from a base port on;
    rules left on (the launcher turns them off with two ingestion processes)."""
    port, metrics_base = localstack.free_port(), localstack.free_port_run(4)
    path = write_config(
        directory,
        influx_url,
        database,
        cluster=section,
        hj212={"listen": f"127.0.0.1:{port}", "reuse_port": True, "idle_timeout_s": 60},
        metrics={"enabled": True, "listen": f"127.0.0.1:{metrics_base}"},
        api={"enabled": False},
        **extra,
    )
    return path, port, metrics_base


def gauge(port: int, name: str) -> float:
    try:
        return metric(port, name)
    except OSError:  # not listening (yet, or any more)
        return math.nan


def up(port: int) -> Callable[[], bool]:
    """Whether a process's metrics answer (they start after its listeners)."""
    return lambda: gauge(port, "process_cpu_seconds_total") >= 0


async def until(condition: Callable[[], bool], what: str, limit_s: float = 120.0) -> None:
    """Poll `condition` (in a thread: it may do I/O); a bound against hanging, not a timing."""
    deadline = time.monotonic() + limit_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.2)


class Devices:
    """Devices on their own connections: one upload at a time, sent again when not answered;
    a connection that breaks is opened again (to whichever process the kernel picks)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: set[int] = set()
        self.first: set[int] = set()  # devices whose first upload was acknowledged
        self.go = asyncio.Event()  # the uploads after the first
        self.half: set[int] = set()  # devices that sent half their uploads
        self.rest = asyncio.Event()  # the second half
        self.reconnects = 0

    async def run(self, k: int) -> None:
        client: DeviceClient | None = None
        try:
            for n, i in enumerate(range(k, TOTAL, DEVICES)):
                if n == 1:
                    self.first.add(k)
                    await self.go.wait()
                if n == PER_DEVICE // 2:
                    self.half.add(k)
                    await self.rest.wait()
                while True:
                    try:
                        if client is None:
                            client = await DeviceClient.connect("127.0.0.1", self.port)
                        await client.send(frame_for(i))
                        if await self._acked(client, i):
                            self.acked.add(i)
                            break
                    except (ConnectionError, OSError):
                        if client is not None:
                            await client.close()
                        client = None
                        self.reconnects += 1
                        await asyncio.sleep(0.1)
        finally:
            if client is not None:
                await client.close()

    @staticmethod
    async def _acked(client: DeviceClient, i: int) -> bool:
        want = qn_for(i)
        try:
            while True:
                reply = await client.read_frame(15)
                if reply.cn == "9014" and reply.qn == want:
                    return True
        except TimeoutError:
            return False


async def test_two_ingestion_processes_share_the_port_and_survive_a_kill(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    config, port, metrics_base = node_config(
        tmp_path / "node", influx.url, database, cluster(nats, ["ingest", "writer"], node="n")
    )
    launcher = Launcher(config, 2, 1, stop_timeout_s=20.0, backoff_s=0.2)
    running = asyncio.create_task(launcher.run())
    ingest_ports = (metrics_base, metrics_base + 1)
    writer_port = metrics_base + 2
    try:
        # metrics come up after the HJ 212 listener: both processes are in the port's group
        for mport in (*ingest_ports, writer_port):
            await until(up(mport), "up")
        devices = Devices(port)
        pumps = [asyncio.create_task(devices.run(k)) for k in range(DEVICES)]
        await until(lambda: len(devices.first) == DEVICES, "every first upload acked")
        opened = [gauge(p, "hj212_connections_open") for p in ingest_ports]
        assert sum(opened) == DEVICES, opened
        assert all(n > 0 for n in opened), opened  # the kernel spread them over both
        assert gauge(writer_port, "hj212_connections_open") == 0  # a writer does not listen

        devices.go.set()
        await until(lambda: len(devices.half) == DEVICES, "half of the uploads acked")
        victim = launcher.slots[1]
        assert victim.process == NodeProcess("ingest", 1, 2) and victim.proc is not None
        killed_pid = victim.proc.pid
        devices.rest.set()  # the devices go on as the process dies under them
        victim.proc.send_signal(signal.SIGKILL)
        acked_at_kill = len(devices.acked)
        await asyncio.gather(*pumps)
        assert len(devices.acked) == TOTAL > acked_at_kill
        assert devices.reconnects > 0  # devices of the killed process came back
        await until(lambda: victim.starts == 2, "the killed process started again")
        assert victim.restarts == 1 and launcher.restarts == 1
        assert victim.proc is not None and victim.proc.pid != killed_pid
        values = await wait_stored(influx.url, database, devices.acked)
        assert devices.acked <= set(values), sorted(devices.acked - set(values))[:10]
        assert len(values) == len(set(values))  # each acked upload once, as one point
        await until(up(ingest_ports[1]), "back up")
    finally:
        launcher.stop()
        await running
    codes = [slot.proc.returncode for slot in launcher.slots if slot.proc is not None]
    assert codes == [0, 0, 0], codes  # SIGTERM: each shut down by itself


def test_cli_node_stops_its_processes_on_sigterm(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    config, _port, metrics_base = node_config(
        tmp_path / "node", influx.url, database, cluster(nats, ["ingest"], node="c")
    )
    log = tmp_path / "node.log"
    argv = [sys.executable, "-m", "gateway.cli", "cluster-node", "--config", str(config)]
    node = subprocess.Popen(
        [*argv, "--ingest", "2", "--writers", "1"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        for mport in range(metrics_base, metrics_base + 3):
            asyncio.run(until(up(mport), "up"))
        children = _children(node.pid)
        assert len(children) == 3, children
        node.send_signal(signal.SIGTERM)
        code = node.wait(60)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert code == 0, log.read_text()[-3000:]
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    text = log.read_text()
    assert text.count("process stopped") == 3, text[-3000:]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_each_process_gets_its_role_folder_and_port(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    section = {"enabled": True, "node": "n", "role": ["ingest", "writer"]}
    config, _port, metrics_base = node_config(tmp_path, influx.url, database, section)
    loaded = load_config(config)
    assert loaded.config.rules.enabled and loaded.config.archive.enabled
    for text, role, offset in (("ingest:0:2", "ingest", 0), ("ingest:1:2", "ingest", 1)):
        one = node_process(loaded, NodeProcess.parse(text))
        assert one.config.cluster.role == [role]
        assert one.config.cluster.node == f"n-{role}-{offset}"
        assert one.config.metrics.listen == f"127.0.0.1:{metrics_base + offset}"
        assert one.data_dir == loaded.data_dir / "processes" / f"{role}-{offset}"
        assert not one.config.rules.enabled  # two ingestion processes: each sees a part
        assert one.config.archive.enabled
        assert one.config.mqtt.enabled is (loaded.config.mqtt.enabled and offset == 0)
    writer = node_process(loaded, NodeProcess.parse("writer:1:2"))
    assert writer.config.cluster.role == ["writer"]
    assert writer.config.metrics.listen == f"127.0.0.1:{metrics_base + 3}"
    assert not writer.config.archive.enabled and not writer.config.api.enabled
    alone = node_process(loaded, NodeProcess.parse("ingest:0:1"))
    assert alone.config.rules.enabled  # one ingestion process sees all the traffic
    second = node_process(loaded, NodeProcess.parse("ingest:1:3"))
    assert not second.config.mqtt.enabled  # one MQTT session per node
    assert loaded.config.cluster.role == ["ingest", "writer"]  # the file's config unchanged


@pytest.mark.parametrize("text", ["ingest:2:2", "reader:0:1", "ingest:0", "writer:x:1", ""])
def test_process_argument_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|ingestion process"):
        NodeProcess.parse(text)


def test_node_refused_without_what_it_needs(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    plain = load_config(
        write_config(
            tmp_path / "a", influx.url, database, hj212={"listen": "127.0.0.1:0"}, cluster={}
        )
    )
    problems = check_node(plain, 2, 1)
    assert any("[cluster] enabled = true" in p for p in problems), problems
    assert any("reuse_port = true" in p for p in problems), problems
    assert any("fixed [hj212] listen port" in p for p in problems), problems
    assert check_node(plain, 0, 1)[0].startswith("--ingest must be at least 1")
    config, _, _ = node_config(tmp_path / "b", influx.url, database, {"enabled": True})
    assert check_node(load_config(config), 4, 2) == []


def test_reuse_port_must_be_a_boolean(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    config = write_config(tmp_path, influx.url, database, hj212={"reuse_port": 3})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert any("reuse_port" in p for p in caught.value.problems), caught.value.problems
