"""``pollution-gateway bench-cluster``: one node, many cores, measured in one run.

Three clustered nats-servers and an InfluxDB on loopback; the raw InfluxDB ingest rate as the
yardstick; then for 1, 2 and 4 ingestion processes (and `--writers` writers) a `cluster-node`
on one config, driven by the benchmark's pipelining data loggers (devkit/bench.py):

- throughput: frames/s acknowledged (each ack is after the stream's quorum stored the points);
- end to end: points/s until every acknowledged point is counted back in InfluxDB, and the
  points lost (acknowledged, not in InfluxDB: must be 0);
- ack latency p50/p99 at a paced 2,000 frames/s from 50 devices.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from devkit import localstack
from devkit.bench import _drive, _paced_latency, _percentiles, _raw_ingest
from devkit.benchkit import POLLUTANTS, bench_frame, bench_mn
from devkit.process import metric, stop


def _config(
    work: Path, servers: list[str], influx_url: str, ingest: int, devices: int
) -> tuple[Path, int, int]:
    """A node's config for `ingest` processes: its own database and stream."""
    port, metrics_base = localstack.free_port(), localstack.free_port_run(16)
    work.mkdir(parents=True, exist_ok=True)
    outlets = "".join(
        f'\n  [[enterprises.outlets]]\n  id = "O{i}"\n  mn = "{bench_mn(i)}"'
        '\n  password = "123456"\n'
        for i in range(devices)
    )
    (work / "registry.toml").write_text(f'[[enterprises]]\nid = "BENCH"\n{outlets}')
    urls = ", ".join(f'"{url}"' for url in servers)
    config = work / "gateway.toml"
    config.write_text(
        f"""[gateway]
data_dir = "gw"
log_format = "json"
log_level = "warning"
shutdown_timeout_s = 20
[hj212]
listen = "127.0.0.1:{port}"
reuse_port = true
max_connections_per_address = 60000
max_inflight_per_connection = 512
[influx]
url = "{influx_url}"
database = "bench{ingest}"
batch_lines = 5000
flush_interval_s = 0.2
retry_max_s = 1.0
[metrics]
listen = "127.0.0.1:{metrics_base}"
[api]
enabled = false
[mqtt]
enabled = false
[rules]
enabled = false
[cluster]
enabled = true
node = "bench"
servers = [{urls}]
stream = "BENCH{ingest}"
subjects = ["bench{ingest}.>"]
subject = "bench{ingest}.ingest"
"""
    )
    return config, port, metrics_base


def _count(url: str, database: str) -> int:
    rows = localstack.query(url, database, "SELECT count(avg) FROM emission")
    series = rows["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


async def _up(port: int, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            await asyncio.to_thread(metric, port, "process_cpu_seconds_total")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no metrics on port {port} in {limit_s:g} s") from None
            await asyncio.sleep(0.2)


def _start_node(config: Path, ingest: int, writers: int, log: Path) -> subprocess.Popen[bytes]:
    """`pollution-gateway cluster-node` on `config`, its output appended to `log`."""
    argv = [sys.executable, "-m", "gateway.cli", "cluster-node", "--config", str(config)]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*argv, "--ingest", str(ingest), "--writers", str(writers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _node_run(
    work: Path,
    servers: list[str],
    influx_url: str,
    ingest: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    conns = args.connections
    config, port, metrics_base = _config(work, servers, influx_url, ingest, conns)
    database = f"bench{ingest}"
    node = _start_node(config, ingest, args.writers, work / "node.log")
    key = f"p{ingest}"
    results: dict[str, float] = {}
    try:
        for offset in range(ingest + args.writers):
            await _up(metrics_base + offset)
        per_conn = args.frames // conns
        base = datetime(2025, 1, 1)
        frames = [
            [bench_frame(bench_mn(k), i, base) for i in range(per_conn)] for k in range(conns)
        ]
        started = time.perf_counter()
        acked, elapsed = await _drive(port, frames, 64, args.seconds * 6)
        results[f"{key}_frames_acked"] = acked
        results[f"{key}_ack_frames_per_s"] = acked / elapsed
        spread = [metric(metrics_base + i, "frames_received_total") for i in range(ingest)]
        results[f"{key}_frames_share_min_process"] = min(spread) / max(1.0, sum(spread))
        results[f"{key}_frames_share_max_process"] = max(spread) / max(1.0, sum(spread))
        expected = acked * len(POLLUTANTS)
        while (
            stored := await asyncio.to_thread(_count, influx_url, database)
        ) < expected and time.perf_counter() - started < 300:
            await asyncio.sleep(0.2)
        total = time.perf_counter() - started
        results[f"{key}_points_expected"] = expected
        results[f"{key}_points_verified"] = stored
        results[f"{key}_points_lost"] = max(0, expected - stored)
        results[f"{key}_e2e_points_per_s"] = stored / total
        paced = await _paced_latency(port, 2000.0, args.seconds, conns, datetime(2025, 6, 1))
        results.update(_percentiles(f"{key}_ack_latency", paced))
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            stop(node)
    return results


async def _bench(args: argparse.Namespace) -> dict[str, float]:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict[str, float] = {"load_average_1m_at_start": os.getloadavg()[0]}
    influx = localstack.influxdb(work / "influxdb")
    servers = localstack.nats_cluster(work / "nats")
    influx.start()
    try:
        for server in servers:
            server.start()
        localstack.wait_jetstream(servers)
        results["raw_influx_points_per_s"] = await _raw_ingest(influx.url, 500_000)
        for ingest in args.processes:
            run = await _node_run(
                work / f"node{ingest}", [s.url for s in servers], influx.url, ingest, args
            )
            run[f"p{ingest}_e2e_vs_raw"] = (
                run[f"p{ingest}_e2e_points_per_s"] / results["raw_influx_points_per_s"]
            )
            results.update(run)
        results["load_average_1m_at_end"] = os.getloadavg()[0]
    finally:
        for server in servers:
            server.stop()
        influx.stop()
    return results


def main(args: argparse.Namespace) -> int:
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()}", flush=True)
    results = asyncio.run(_bench(args))
    width = max(map(len, results))
    for name, value in results.items():
        print(
            f"{name:<{width}}  {value:,.2f}"
            if isinstance(value, float)
            else f"{name:<{width}}  {value:,}"
        )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run")
    parser.add_argument("--connections", type=int, default=50, help="device connections")
    parser.add_argument("--frames", type=int, default=60000, help="frames of each throughput run")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2, 4], help="ingestion processes"
    )
    parser.add_argument("--writers", type=int, default=2, help="writer processes of each run")
    parser.add_argument("--workdir", default="var/bench-cluster")
