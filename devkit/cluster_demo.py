"""``pollution-gateway cluster-demo``: the cluster mode on loopback, and the simulator played
through it.

Three clustered NATS servers, PostgreSQL, InfluxDB, Mosquitto and HAProxy (HJ 212, round robin
with `send-proxy-v2`) in front of two ingestion nodes; two writers and two rule workers. Each
gateway node is a process of its own (`pollution-gateway run`), with its own data folder under
the work folder and its log in `logs/`. With `--simulate` the simulated enterprises play the
demo's two days (devkit/demo.py) through HAProxy and Mosquitto, and every anomaly event the
rule workers record in PostgreSQL is printed with its Chinese sentence. Every scripted type
is awaited.

Both ingestion nodes serve the API from the shared PostgreSQL stores, on `--api-port` and the
port after it, with one admin token (printed). The demo declares the operator's regime through
`ingest-1`'s API (every worker reads it from PostgreSQL) and prints the events of the shared
anomaly store. `running` starts the same cluster for a test (tests/cluster/test_grand_day.py)
and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from devkit import localstack
from devkit.demo import BEIJING, Terminal, _declare, _play
from devkit.simulator import Simulator, registry_toml
from devkit.simulator.script import ORANGE, RED, SHUTDOWN_FROM
from gateway.anomalies.store import AnomalyStore
from gateway.cluster.config import ClusterSection
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
INGEST = ("ingest-1", "ingest-2")
PARTITIONS = ClusterSection().partitions
SHARED_GROUP = "gateways"
TOKENS_ENV = "CLUSTER_DEMO_API_TOKENS"


class Interrupted(Exception):
    """Stopped (Ctrl-C) before the cluster was ready."""


@dataclass(frozen=True)
class Options:
    """What the cluster is made of: the simulated enterprises' registry, HAProxy's HJ 212
    port, the API ports (`ingest-1` on `api_port`, `ingest-2` on the next one) and their
    admin token."""

    enterprises: int
    hj212_port: int
    api_port: int
    offline_after_s: float = 60.0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @classmethod
    def of(cls, args: argparse.Namespace) -> Options:
        return cls(args.enterprises, args.hj212_port, args.api_port, args.offline_after_s)


@dataclass
class Node:
    """A gateway process of the cluster."""

    name: str
    config: Path
    log: Path
    metrics_port: int
    api_port: int | None = None
    hj212_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start the process (again, after `kill`: same config, data folder and log)."""
        argv = [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}  # the log as it happens
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops the nodes
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL, as a crash: the process runs none of its shutdown."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def check(self) -> None:
        """Raise if the process has ended (other than by `kill`)."""
        if self.proc is not None and (code := self.proc.poll()) is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise localstack.LocalStackError(f"node {self.name} exited ({code}); {tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def metric(self, name: str, labels: str = "") -> float:
        """The sum of the samples of `name` (with `labels`, as written in the exposition
        text: `version="2"`) this node exposes; 0 if none or it does not answer."""
        try:
            text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics").decode()
        except OSError:
            return 0.0
        wanted = f"{name}{{{labels}}}" if labels else name
        total = 0.0
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if key == wanted or (not labels and key.startswith(f"{name}{{")):
                total += float(value)
        return total


@dataclass
class Cluster:
    """What `running` started (servers, then nodes), stopped in reverse order."""

    work: Path
    options: Options
    servers: list[localstack.ManagedProcess] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    nats: list[localstack.NatsServer] = field(default_factory=list)
    dsn: str = ""
    influx_url: str = ""
    mqtt_port: int = 0

    def serve(self, server: localstack.ManagedProcess) -> None:
        server.start()
        self.servers.append(server)

    def node(self, name: str) -> Node:
        (found,) = [n for n in self.nodes if n.name == name]
        return found

    @property
    def ingest(self) -> list[Node]:
        return [n for n in self.nodes if n.name in INGEST]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.name.startswith("rules-")]

    def api(self, name: str) -> str:
        """The base URL of an ingestion node's API."""
        return f"http://127.0.0.1:{self.node(name).api_port}"

    def check(self) -> None:
        for node in self.nodes:
            node.check()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            node.stop()
        for server in reversed(self.servers):
            if isinstance(server, localstack.PostgresServer):
                localstack.remove_postgres(server)
            else:
                server.stop()


def _get(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as resp:
        body: bytes = resp.read()
        return body


def _toml(sections: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _node(
    work: Path, name: str, common: dict[str, dict[str, object]], **sections: dict[str, object]
) -> Node:
    directory = work / "nodes" / name
    directory.mkdir(parents=True)
    metrics_port = localstack.free_port()
    config: dict[str, dict[str, object]] = {**common, **sections}
    config["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    config["cluster"] = {**common["cluster"], **sections.get("cluster", {}), "node": name}
    path = directory / "gateway.toml"
    path.write_text(_toml(config))
    api = sections.get("api", {})
    api_port = int(str(api["listen"]).rpartition(":")[2]) if api.get("enabled", True) else None
    hj212 = sections.get("hj212", {})
    hj212_port = int(str(hj212["listen"]).rpartition(":")[2]) if "listen" in hj212 else None
    log = work / "logs" / f"{name}.log"
    return Node(name, path, log, metrics_port, api_port, hj212_port)


def _nodes(cluster: Cluster) -> list[Node]:
    """Two ingestion nodes (HJ 212 behind HAProxy, MQTT as one shared subscription, the
    API), two writers and two rule workers, all of the simulated enterprises' registry."""
    work, options = cluster.work, cluster.options
    common: dict[str, dict[str, object]] = {
        "gateway": {
            "data_dir": "data",
            "registry": str(work / "registry.toml"),
            "log_format": "json",
            "log_level": "warning",
        },
        "influx": {"url": cluster.influx_url, "database": "pollution", "flush_interval_s": 0.5},
        "cluster": {
            "enabled": True,
            "servers": [s.url for s in cluster.nats],
            "rule_workers": True,
            "postgres_dsn": cluster.dsn,
        },
    }
    nodes = []
    for k, name in enumerate(INGEST):
        nodes.append(
            _node(
                work,
                name,
                common,
                cluster={"role": ["ingest"]},
                hj212={
                    "listen": f"127.0.0.1:{localstack.free_port()}",
                    "proxy_protocol": "required",
                    "proxy_from": ["127.0.0.1"],
                },
                mqtt={
                    "enabled": True,
                    "port": cluster.mqtt_port,
                    "client_id": f"cluster-demo-{name}",
                    "shared_group": SHARED_GROUP,
                },
                api={"listen": f"127.0.0.1:{options.api_port + k}", "tokens_env": TOKENS_ENV},
                gateway={**common["gateway"], "log_level": "info"},  # "MQTT subscribed"
            )
        )
        nodes[-1].env[TOKENS_ENV] = f"{options.token}:admin"
    off: dict[str, dict[str, object]] = {"mqtt": {"enabled": False}, "api": {"enabled": False}}
    for k in (1, 2):
        nodes.append(_node(work, f"writer-{k}", common, cluster={"role": ["writer"]}, **off))
    for k in (1, 2):
        nodes.append(_node(work, f"rules-{k}", common, cluster={"role": ["rules"]}, **off))
    return nodes


async def _until_ready(cluster: Cluster, stop: asyncio.Event, timeout_s: float = 120) -> bool:
    """Until both ingestion nodes' APIs answer and their MQTT subscriptions are made (their
    logs say so), and the rule workers own every partition between them; False if `stop`
    came first."""
    ingest, workers = cluster.ingest, cluster.workers
    deadline = time.monotonic() + timeout_s

    def ready() -> bool:
        for node in ingest:
            try:
                _get(f"http://127.0.0.1:{node.api_port}/healthz")
            except OSError:
                return False
        if not all('"MQTT subscribed"' in n.log.read_text(errors="replace") for n in ingest):
            return False
        owned = sum(w.metric("cluster_rule_partitions_owned") for w in workers)
        return owned == PARTITIONS

    while not await asyncio.to_thread(ready):
        if stop.is_set():
            return False
        cluster.check()
        if time.monotonic() > deadline:
            raise localstack.LocalStackError(f"the cluster was not ready within {timeout_s:g} s")
        await asyncio.sleep(0.3)
    return True


async def declare(cluster: Cluster, day: datetime) -> None:
    """The demo's regime (devkit/demo.py `regime_for`) through `ingest-1`'s API, as an
    operator declares it; the nodes share it through PostgreSQL."""
    await _declare(cluster.api(INGEST[0]), cluster.options.token, day, cluster.options.enterprises)


async def _print_events(dsn: str, term: Terminal, stop: asyncio.Event) -> None:
    """Every event of the shared anomaly store, in `seq` order, to `term`, until `stop`."""
    store = AnomalyStore(PgAnomalies(dsn))
    seq = 0
    try:
        while not stop.is_set():
            events = await asyncio.to_thread(store.events_after, seq)
            for event in events:
                term.anomaly(event)
                seq = event.seq
            if not events:
                await asyncio.sleep(0.25)
    finally:
        store.close()


@contextlib.asynccontextmanager
async def running(
    work: Path,
    options: Options,
    stop: asyncio.Event | None = None,
    say: Callable[[str], None] = lambda _line: None,
) -> AsyncIterator[Cluster]:
    """The cluster started under `work` (emptied first) and ready (`_until_ready`); every
    process stopped on leaving. `Interrupted` if `stop` is set before it is ready; `say`
    gets the addresses as they are known."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    (work / "registry.toml").write_text(
        registry_toml(options.enterprises, logger_offline_after_s=options.offline_after_s)
    )
    cluster = Cluster(work, options)
    try:
        cluster.nats = localstack.nats_cluster(work / "nats")
        for server in cluster.nats:
            cluster.serve(server)
        await asyncio.to_thread(localstack.wait_jetstream, cluster.nats)
        pg = localstack.postgres(work / "postgres")
        cluster.serve(pg)
        cluster.dsn = pg.create_database("gateway")
        influx = localstack.influxdb(work / "influxdb")
        cluster.serve(influx)
        cluster.influx_url = influx.url
        broker = localstack.mosquitto(work / "mosquitto")
        cluster.serve(broker)
        cluster.mqtt_port = broker.port
        cluster.nodes = _nodes(cluster)
        route = localstack.Route(
            "hj212",
            options.hj212_port,
            [("127.0.0.1", n.hj212_port) for n in cluster.ingest if n.hj212_port is not None],
            option="send-proxy-v2",
        )
        cluster.serve(localstack.haproxy(work / "haproxy", [route]))
        for node in cluster.nodes:
            node.start()
        say(f"NATS: {' '.join(s.url for s in cluster.nats)}; PostgreSQL: {cluster.dsn}")
        say(f"InfluxDB: {influx.url}; Mosquitto: {broker.url}")
        say(
            f"HAProxy 127.0.0.1:{options.hj212_port} (send-proxy-v2) -> "
            + ", ".join(f"{n.name} 127.0.0.1:{n.hj212_port}" for n in cluster.ingest)
        )
        say(
            "API: "
            + ", ".join(f"{n.name} {cluster.api(n.name)}" for n in cluster.ingest)
            + f" (admin token {options.token})"
        )
        say(f"nodes: {', '.join(n.name for n in cluster.nodes)}; logs in {work / 'logs'}")
        if not await _until_ready(cluster, stop or asyncio.Event()):
            raise Interrupted
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


async def _cluster_demo(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        async with running(Path(args.workdir), Options.of(args), stop, say) as cluster:
            print("the cluster is ready: the rule workers own every partition", flush=True)
            if not args.simulate:
                print("Ctrl-C stops the cluster", flush=True)
                while not stop.is_set():
                    cluster.check()
                    await asyncio.sleep(1)
                return 0
            return await _simulate(args, cluster, stop)
    except Interrupted:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _simulate(args: argparse.Namespace, cluster: Cluster, stop: asyncio.Event) -> int:
    today = datetime.now(BEIJING).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=1)
    await declare(cluster, day)
    print(
        f"declared through the API of {INGEST[0]}: shutdown of line L1 at every plant from "
        f"{day:%Y-%m-%d} {SHUTDOWN_FROM:02d}:00, orange alert over sim-city {ORANGE[0]:02d}:00-"
        f"{ORANGE[1]:02d}:00, then red until {RED[1]:02d}:00 (Beijing time)",
        flush=True,
    )
    registry = Registry.load(cluster.work / "registry.toml")
    term = Terminal(lambda: registry)
    events_stop = asyncio.Event()
    printer = asyncio.create_task(_print_events(cluster.dsn, term, events_stop))
    try:
        async with Simulator(
            enterprises=args.enterprises,
            hj212=("127.0.0.1", args.hj212_port),
            mqtt=("127.0.0.1", cluster.mqtt_port),
            speedup=args.speedup,
            on_progress=term.progress,
        ) as sim:
            page = f"{cluster.api(INGEST[0])}/#token={cluster.options.token}"
            missing = await _play(sim, args, term, today, page, stop)
        carried = {
            n.name: await asyncio.to_thread(n.metric, "hj212_proxy_headers_total", 'version="2"')
            for n in cluster.ingest
        }
        print(
            f"HAProxy carried {sum(carried.values()):.0f} device connections (PROXY v2 headers "
            "taken): " + ", ".join(f"{name} {count:.0f}" for name, count in carried.items()),
            flush=True,
        )
    finally:
        events_stop.set()
        await asyncio.gather(printer, return_exceptions=True)
    return 1 if missing and args.exit else 0


def main(args: argparse.Namespace) -> int:
    args.workdir = str(Path(args.workdir).resolve())
    try:
        return asyncio.run(_cluster_demo(args))
    except localstack.LocalStackError as exc:
        print(f"cluster-demo: {exc}", file=sys.stderr)
        return 2
