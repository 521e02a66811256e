#!/usr/bin/env bash
# Cluster mode on loopback: three clustered nats-servers (JetStream on, data under
# var/cluster/), InfluxDB and Mosquitto, one ingestion node (HJ 212 on 127.0.0.1:9212, MQTT,
# the rules, the API on 127.0.0.1:9280) and two writer nodes draining the stream into InfluxDB.
# With --simulate the simulator plays its scripted day through the ingestion node.
# Ctrl-C stops everything. Logs: var/cluster/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python - "$@" <<'PY'
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devkit import localstack

root = Path("var/cluster").resolve()
root.mkdir(parents=True, exist_ok=True)
registry = Path("config/registry.toml").resolve()
simulate = "--simulate" in sys.argv[1:]
if simulate:  # the simulated enterprises' registry, for every node
    registry = root / "registry.toml"
    printed = [".venv/bin/pollution-gateway", "simulate", "--print-registry"]
    registry.write_bytes(subprocess.run(printed, check=True, capture_output=True).stdout)
started: list[localstack.ManagedProcess] = []
nodes: list[subprocess.Popen[bytes]] = []


def serve(proc: localstack.ManagedProcess) -> None:
    if proc.answers():
        print(f"{proc.name} already answers on {proc.url}; using it", file=sys.stderr)
        return
    proc.start()
    started.append(proc)


def node(name: str, cluster: dict[str, object], **sections: dict[str, object]) -> None:
    directory = root / name
    directory.mkdir(exist_ok=True)
    config: dict[str, dict[str, object]] = {
        "gateway": {"data_dir": "data", "registry": str(registry)},
        "influx": {"url": influx.url, "database": "pollution"},
        "cluster": {"enabled": True, "servers": [s.url for s in servers], "node": name, **cluster},
        **sections,
    }
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    log = (root / f"{name}.log").open("ab")
    argv = [".venv/bin/pollution-gateway", "run", "--config", str(path)]
    nodes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
    print(f"node {name} ({', '.join(cluster['role'])}) started, log {root / name}.log")


servers = localstack.nats_cluster(root / "nats")
try:
    for server in servers:
        server.start()
        started.append(server)
    localstack.wait_jetstream(servers)
    print("NATS:", " ".join(s.url for s in servers))
    influx = localstack.influxdb(root / "influxdb", port=8086)
    serve(influx)
    serve(localstack.mosquitto(root / "mosquitto", port=1883))
    node(
        "ingest-1",
        {"role": ["ingest"]},
        hj212={"listen": "127.0.0.1:9212"},
        metrics={"listen": "127.0.0.1:9213"},
    )
    for k in (1, 2):
        node(
            f"writer-{k}",
            {"role": ["writer"]},
            mqtt={"enabled": False},
            api={"enabled": False},
            metrics={"listen": f"127.0.0.1:{9213 + k}"},
        )
    if simulate:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the ingestion node listens
            try:
                socket.create_connection(("127.0.0.1", 9212), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        sim = [".venv/bin/pollution-gateway", "simulate", "--hj212", "127.0.0.1:9212"]
        nodes.append(subprocess.Popen(sim))
    print("running; Ctrl-C stops the cluster")
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # after the children: they keep theirs
    signal.sigwait(stop)
finally:
    for proc in reversed(nodes):
        proc.terminate()
    for proc in nodes:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for managed in reversed(started):
        managed.stop()
PY
