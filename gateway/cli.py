"""Command line: ``pollution-gateway run | check-config | backup | token | bench | ...``, and
``--version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from gateway import logs

from .archive import command as archive_command
from .cluster.processes import NodeProcess, node_process
from .config import LoadedConfig, load_config
from .errors import ConfigError

if TYPE_CHECKING:
    from devkit.localstack import ManagedProcess


def _load(path: str) -> LoadedConfig:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .checks import checked_config  # every problem, then exit status 2

    loaded = checked_config(args.file)
    devices = sum(1 for _ in loaded.registry.devices())
    print(
        f"{args.file}: OK ({len(loaded.registry.data.enterprises)} enterprises, {devices} devices)"
    )
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    import sqlite3

    from .backup import BackupError, backup

    loaded = _load(args.config)
    try:
        report = backup(loaded.data_dir, Path(args.dir))
    except ConfigError as exc:  # state of a newer release, or damaged
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    for name, version in report.stores.items():
        print(f"{name}: copied (schema version {version})")
    if report.spool is not None:
        spool = report.spool
        cursor = f"{spool.cursor.segment} {spool.cursor.offset}" if spool.cursor else "none"
        print(
            f"spool: {spool.segments} segments, {spool.bytes} bytes, {spool.records} records"
            f" from the cursor ({cursor}) on"
        )
        print(
            "spool copy: every record acknowledged before the backup began and not yet"
            " delivered is in it; records appended during the copy may be missing from its end"
        )
    if report.archive is not None:
        print(f"archive: {report.archive.days} day files, {report.archive.bytes} bytes")
    print(f"backup of {loaded.data_dir} in {report.destination}")
    return 0


def package_version() -> str:
    """The installed distribution's version (``unknown`` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pollution-gateway")
    except PackageNotFoundError:
        return "unknown"


def start_local_stack(loaded: LoadedConfig) -> list[ManagedProcess]:
    """Start InfluxDB 1.x (on the configured URL's port) and Mosquitto (1883) on loopback,
    with their data beside the gateway's data folder. A server already answering is reused."""
    from devkit import localstack  # tooling: loaded only for --local-stack

    url = urlsplit(loaded.config.influx.url)
    if url.hostname not in ("127.0.0.1", "localhost") or loaded.config.influx.version != 1:
        raise SystemExit("--local-stack runs InfluxDB 1.x: influx.url must be on 127.0.0.1")
    root = loaded.data_dir.parent
    started = []
    for proc in (
        localstack.influxdb(root / "influxdb", port=url.port or 8086),
        localstack.mosquitto(root / "mosquitto", port=1883),
    ):
        if proc.answers():
            print(f"{proc.name} already answers on {proc.url}; using it", file=sys.stderr)
            continue
        proc.start()
        started.append(proc)
        print(f"{proc.name} started on {proc.url}, data in {proc.data_dir}", file=sys.stderr)
    return started


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if args.process is not None:  # one process of `cluster-node`
        loaded = node_process(loaded, args.process)
        structlog.contextvars.bind_contextvars(process=args.process.name)
    _raise_open_files_limit()
    cfg = loaded.config.gateway
    logs.configure(cfg.log_format, cfg.log_level)
    started = start_local_stack(loaded) if args.local_stack else []
    try:
        from .supervisor import GatewayFailed, run

        _install_uvloop()
        _tune_gc()
        asyncio.run(run(loaded))
    except ConfigError as exc:  # found at start-up: a store or spool newer than this release
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except GatewayFailed as exc:  # logged where it happened; the exit status says it
        print(f"gateway stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in started:
            proc.stop()
    return 0


def cmd_cluster_node(args: argparse.Namespace) -> int:
    from .cluster.processes import run_node

    loaded = _load(args.config)
    cfg = loaded.config.gateway
    logs.configure(cfg.log_format, cfg.log_level)
    try:
        asyncio.run(run_node(loaded, args.ingest, args.writers, args.rules))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from devkit.simulator.command import main as simulate_main

    logs.configure("console", "warning")
    return simulate_main(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from devkit.demo import main as demo_main

    logs.configure("console", "error")  # the anomaly stream is the demo's output
    return demo_main(args)


def cmd_cluster_demo(args: argparse.Namespace) -> int:
    from devkit.cluster_demo import main as cluster_demo_main

    logs.configure("console", "error")  # the anomaly stream is the demo's output
    return cluster_demo_main(args)


def cmd_token(_args: argparse.Namespace) -> int:
    """Print a fresh token (give it to the person or system, once) and its hash (keep it in
    the account's entry of the accounts file)."""
    from gateway.accounts import new_token, token_hash

    token = new_token()
    print(f"token:        {token}")
    print(f'token_sha256 = "{token_hash(token)}"')
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from devkit.bench import main as bench_main

    return bench_main(args)


def cmd_bench_cluster(args: argparse.Namespace) -> int:
    from devkit.bench_cluster import main as bench_cluster_main

    return bench_cluster_main(args)


def cmd_bench_thingsboard(args: argparse.Namespace) -> int:
    from devkit.bench_thingsboard import main as bench_thingsboard_main

    return bench_thingsboard_main(args)


def cmd_archive(args: argparse.Namespace) -> int:
    from .archive.command import run

    return run(args, Path(args.dir) if args.dir else _load(args.config).data_dir / "archive")


def cmd_fuzz(args: argparse.Namespace) -> int:
    from devkit.fuzz import main as fuzz_main

    return fuzz_main(args)


def _raise_open_files_limit() -> None:
    """One descriptor per device connection: use the hard limit, not the soft one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tune_gc() -> None:
    """Every frame allocates many short-lived objects and no cycles: collect less often, and
    keep what start-up allocated out of the collector's way."""
    import gc

    gc.freeze()
    gc.set_threshold(1_000_000, 50, 100)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _bench_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    from devkit.bench_cluster import add_arguments

    add_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pollution-gateway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the gateway daemon")
    run_p.add_argument("--config", default="config/gateway.toml")
    run_p.add_argument(
        "--local-stack",
        action="store_true",
        help="start InfluxDB from the Debian package on loopback, data under the project",
    )
    run_p.add_argument(
        "--process",
        type=NodeProcess.parse,
        help="ROLE:INDEX:N, one process of cluster-node (which passes it)",
    )
    run_p.set_defaults(func=cmd_run)
    node_p = sub.add_parser(
        "cluster-node", help="N ingestion and M writer processes of one config on this machine"
    )
    node_p.add_argument("--config", default="config/gateway.toml")
    node_p.add_argument("--ingest", type=int, default=2, help="ingestion processes (HJ 212 port)")
    node_p.add_argument("--writers", type=int, default=1, help="stream -> InfluxDB processes")
    node_p.add_argument(
        "--rules", type=int, default=0, help="rule workers (needs [cluster] rule_workers)"
    )
    node_p.set_defaults(func=cmd_cluster_node)
    check_p = sub.add_parser("check-config", help="validate a config file and its registry")
    check_p.add_argument("file")
    check_p.set_defaults(func=cmd_check_config)
    backup_p = sub.add_parser(
        "backup", help="copy the stores and the spool while the gateway runs, into DIR"
    )
    backup_p.add_argument("dir", metavar="DIR", help="an absent or empty folder")
    backup_p.add_argument("--config", default="config/gateway.toml")
    backup_p.set_defaults(func=cmd_backup)
    archive_p = sub.add_parser("archive", help="the raw frame archive: verify, frames")
    archive_command.add_arguments(archive_p)
    archive_p.set_defaults(func=cmd_archive)
    token_p = sub.add_parser(
        "token", help="a new bearer token, and the line of its hash for the accounts file"
    )
    token_p.set_defaults(func=cmd_token)
    bench_p = sub.add_parser("bench", help="measure throughput, ack latency and memory")
    bench_p.add_argument("--seconds", type=float, default=10.0, help="length of each timed run")
    bench_p.add_argument("--connections", type=int, default=50, help="device connections")
    bench_p.add_argument("--frames", type=int, default=100000, help="frames in the timed runs")
    bench_p.add_argument("--idle", type=int, default=10000, help="idle connections for RSS")
    bench_p.add_argument(
        "--bad", type=int, default=5000, help="bad connections open during a latency run"
    )
    bench_p.add_argument("--workdir", default="var/bench")
    bench_p.add_argument("--mqtt-messages", type=int, default=50000, help="MQTT run size")
    bench_p.add_argument("--skip-mqtt", action="store_true", help="HJ 212 runs only")
    bench_p.set_defaults(func=cmd_bench)
    bench_cluster_p = sub.add_parser(
        "bench-cluster", help="1, 2 and 4 ingestion processes over a 3-server NATS cluster"
    )
    _bench_cluster_arguments(bench_cluster_p)
    bench_cluster_p.set_defaults(func=cmd_bench_cluster)
    bench_tb_p = sub.add_parser(
        "bench-thingsboard", help="the MQTT path beside paho and the ThingsBoard IoT gateway"
    )
    bench_tb_p.add_argument("--readings", type=int, default=50_000, help="queued per consumer")
    bench_tb_p.add_argument("--storage", default="file,sqlite,memory", help="ThingsBoard storages")
    bench_tb_p.add_argument("--rounds", type=int, default=1, help="every consumer N times")
    bench_tb_p.add_argument("--tb-reads", type=int, default=1000, help="ThingsBoard records/pack")
    bench_tb_p.add_argument("--tb-venv", help="default ~/.cache/pollution-gateway/tb-venv")
    bench_tb_p.add_argument("--workdir", default="var/bench-thingsboard")
    bench_tb_p.set_defaults(func=cmd_bench_thingsboard)
    fuzz_p = sub.add_parser("fuzz", help="hostile devices beside good ones: what it cost")
    fuzz_p.add_argument("--frames", type=int, default=1_000_000, help="hostile frames")
    fuzz_p.add_argument("--seed", type=int, default=1)
    fuzz_p.add_argument("--workdir", default="var/fuzz")
    fuzz_p.set_defaults(func=cmd_fuzz)
    demo_p = sub.add_parser("demo", help="local stack + gateway + simulator, anomalies live")
    demo_p.add_argument("--enterprises", type=int, default=3)
    demo_p.add_argument("--speedup", type=float, default=600.0, help="x wall clock; 0: no pause")
    demo_p.add_argument("--api-port", type=int, default=9280)
    demo_p.add_argument("--hj212-port", type=int, default=9212)
    demo_p.add_argument(
        "--offline-after-s", type=float, default=60.0, help="simulated loggers' offline threshold"
    )
    demo_p.add_argument("--wait-s", type=float, default=120.0, help="for the last anomalies")
    demo_p.add_argument("--workdir", default="var/demo")
    demo_p.add_argument("--exit", action="store_true", help="stop after the scripted day (CI)")
    demo_p.set_defaults(func=cmd_demo)
    cdemo_p = sub.add_parser(
        "cluster-demo", help="the cluster on loopback (NATS, PostgreSQL, HAProxy, 6 nodes)"
    )
    cdemo_p.add_argument("--simulate", action="store_true", help="play the simulator through it")
    cdemo_p.add_argument("--enterprises", type=int, default=3)
    cdemo_p.add_argument("--speedup", type=float, default=600.0, help="x wall clock; 0: no pause")
    cdemo_p.add_argument("--api-port", type=int, default=9280, help="ingest-1's API")
    cdemo_p.add_argument("--hj212-port", type=int, default=9212, help="HAProxy's HJ 212 port")
    cdemo_p.add_argument(
        "--offline-after-s", type=float, default=60.0, help="simulated loggers' offline threshold"
    )
    cdemo_p.add_argument("--wait-s", type=float, default=120.0, help="for the last anomalies")
    cdemo_p.add_argument("--workdir", default="var/cluster")
    cdemo_p.add_argument("--exit", action="store_true", help="stop after the scripted day (CI)")
    cdemo_p.set_defaults(func=cmd_cluster_demo)
    sim_p = sub.add_parser("simulate", help="simulated enterprises against a running gateway")
    sim_p.add_argument("--hj212", default="127.0.0.1:9212", help="host:port of the gateway")
    sim_p.add_argument("--mqtt", default="127.0.0.1:1883", help="host:port of the broker")
    sim_p.add_argument("--prefix", default="pollution", help="MQTT topic prefix")
    sim_p.add_argument("--enterprises", type=int, default=3)
    sim_p.add_argument("--speedup", type=float, default=0.0, help="x wall clock; 0: no pause")
    sim_p.add_argument("--day", help="the scripted day, YYYY-MM-DD (default: yesterday)")
    sim_p.add_argument("--normal-days", type=int, default=1, help="days played before it")
    sim_p.add_argument(
        "--print-registry", action="store_true", help="print the registry TOML and exit"
    )
    sim_p.set_defaults(func=cmd_simulate)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
