"""``pollution-gateway bench-cluster``: one node, many cores, measured in one run.

Three clustered nats-servers and an InfluxDB on loopback; the raw InfluxDB ingest rate as the
yardstick, printed with every run; then for 1, 2 and 4 ingestion processes (and `--writers`
writers) a `cluster-node` on one config, driven by the benchmark's pipelining data loggers
(devkit/bench.py):

- throughput: frames/s acknowledged (each ack is after the stream's quorum stored the points);
- end to end: points/s until every acknowledged point is counted back in InfluxDB, and the
  points lost (acknowledged, not in InfluxDB: must be 0);
- ack latency p50/p99 at a paced 2,000 frames/s from 50 devices.

`--idle N` instead holds N idle device connections on each node of `--processes`
(devkit/bench_idle.py); `--kill N [N ...]` kills an ingestion process and a rule worker of a
node of N ingestion processes under load, for each N (devkit/bench_kill.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import time
from datetime import datetime
from pathlib import Path

from devkit import bench_node, localstack
from devkit.bench import _drive, _paced_latency, _percentiles, _raw_ingest
from devkit.bench_idle import idle_run
from devkit.bench_kill import kill_run
from devkit.benchkit import POLLUTANTS, bench_frame, bench_mn
from devkit.process import metric


async def _node_run(
    work: Path,
    servers: list[str],
    influx_url: str,
    ingest: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    conns = args.connections
    database = f"bench{ingest}"
    registry = bench_node.registry_toml({"BENCH": [bench_mn(i) for i in range(conns)]})
    spec = bench_node.node_config(work, servers, influx_url, database, registry)
    port, metrics_base = spec.port, spec.metrics_base
    node = bench_node.start_node(spec.config, ingest, args.writers, work / "node.log")
    key = f"p{ingest}"
    results: dict[str, float] = {}
    try:
        for offset in range(ingest + args.writers):
            await bench_node.wait_up(metrics_base + offset)
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
            stored := await bench_node.count_points(influx_url, database)
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
        bench_node.stop_node(node)
    return results


async def _bench(args: argparse.Namespace) -> dict[str, float | int | str]:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict[str, float | int | str] = {"load_average_1m_at_start": os.getloadavg()[0]}
    influx = localstack.influxdb(work / "influxdb")
    servers = localstack.nats_cluster(work / "nats")
    influx.start()
    try:
        for server in servers:
            server.start()
        localstack.wait_jetstream(servers)
        raw = await _raw_ingest(influx.url, 500_000)
        results["raw_influx_points_per_s"] = raw
        urls = [s.url for s in servers]
        for ingest in args.kill:
            results.update(
                await kill_run(work / f"kill{ingest}", urls, influx.url, ingest, args, raw)
            )
            results[f"load_average_1m_after_kill_p{ingest}"] = os.getloadavg()[0]
        for ingest in [] if args.kill else args.processes:
            if args.idle:
                results.update(
                    await idle_run(work / f"idle{ingest}", urls, influx.url, ingest, args)
                )
                results[f"load_average_1m_after_idle_p{ingest}"] = os.getloadavg()[0]
                continue
            run = await _node_run(work / f"node{ingest}", urls, influx.url, ingest, args)
            run[f"p{ingest}_e2e_vs_raw"] = run[f"p{ingest}_e2e_points_per_s"] / raw
            results.update(run)
        results["load_average_1m_at_end"] = os.getloadavg()[0]
    finally:
        for server in servers:
            server.stop()
        influx.stop()
    return results


def main(args: argparse.Namespace) -> int:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = bench_node.raise_open_files()
    print(
        f"machine: {os.cpu_count()} cores; load average {os.getloadavg()}; open files "
        f"(ulimit -n) {before[0]} soft / {before[1]} hard, raised to {soft} / {hard} for the "
        "bench and the node's processes",
        flush=True,
    )
    bench_node.print_results(asyncio.run(_bench(args)))
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
    idle = parser.add_argument_group("idle connections (--idle)")
    idle.add_argument(
        "--idle", type=int, default=0, help="hold N idle device connections instead (each node)"
    )
    idle.add_argument(
        "--idle-per-client", type=int, default=10000, help="connections per client process"
    )
    idle.add_argument(
        "--idle-concurrency", type=int, default=48, help="logins under way per client process"
    )
    idle.add_argument("--hold", type=float, default=10.0, help="seconds the connections are held")
    kill = parser.add_argument_group("processes killed mid-run (--kill)")
    kill.add_argument(
        "--kill",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="instead: for each N, N ingestion processes and 2 rule workers, processes killed "
        "under load",
    )
    kill.add_argument("--rate", type=float, default=500.0, help="paced frames/s of --kill")
    kill.add_argument(
        "--probes-per-s", type=float, default=4.0, help="over-limit probe frames/s of --kill"
    )
    kill.add_argument(
        "--takeover-limit", type=float, default=90.0, help="seconds a take-over may take"
    )
    kill.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds the leases are watched after a take-over",
    )
    kill.add_argument(
        "--replay-s",
        type=float,
        default=0.0,
        help="[cluster] replay_s of --kill (0: the default, two days)",
    )
