"""What the cluster benchmarks share: a `cluster-node` of one config on loopback, its
processes (by name), their memory and open-file limits, loopback source addresses for many
client connections, and counting points back from InfluxDB."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.js.errors import NotFoundError

from devkit import localstack
from devkit.process import metric, stop
from gateway.cluster.processes import NodeProcess


@dataclass(frozen=True)
class Node:
    """A node's config: its HJ 212 port, the first metrics port (process i: + i), database."""

    config: Path
    port: int
    metrics_base: int
    database: str


def registry_toml(
    enterprises: Mapping[str, Sequence[str]], limits: Mapping[str, str] | None = None
) -> str:
    """One enterprise per key with an outlet per MN of its value (password 123456);
    `limits[mn]`, when given, is the inline table of that outlet's pollutant limits."""
    out = []
    for ent, mns in enterprises.items():
        out.append(f'[[enterprises]]\nid = "{ent}"\n')
        for i, mn in enumerate(mns):
            out.append(f'\n  [[enterprises.outlets]]\n  id = "O{i}"\n  mn = "{mn}"\n')
            out.append('  password = "123456"\n')
            if limits and mn in limits:
                out.append(f"  pollutants = {limits[mn]}\n")
        out.append("\n")
    return "".join(out)


def _toml(sections: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def node_config(
    work: Path,
    servers: Sequence[str],
    influx_url: str,
    name: str,
    registry: str,
    *,
    rules: bool = False,
    cluster: Mapping[str, Any] | None = None,
    hj212: Mapping[str, Any] | None = None,
) -> Node:
    """A node's config under `work`: its own database, stream and subjects named `name`."""
    port, metrics_base = localstack.free_port(), localstack.free_port_run(16)
    work.mkdir(parents=True, exist_ok=True)
    (work / "registry.toml").write_text(registry)
    sections: dict[str, dict[str, Any]] = {
        "gateway": {
            "data_dir": "gw",
            "log_format": "json",
            "log_level": "warning",
            "shutdown_timeout_s": 20,
        },
        "hj212": {
            "listen": f"127.0.0.1:{port}",
            "reuse_port": True,
            "max_connections_per_address": 60000,
            "max_inflight_per_connection": 512,
            **(hj212 or {}),
        },
        "influx": {
            "url": influx_url,
            "database": name,
            "batch_lines": 5000,
            "flush_interval_s": 0.2,
            "retry_max_s": 1.0,
        },
        "metrics": {"listen": f"127.0.0.1:{metrics_base}"},
        "api": {"enabled": False},
        "mqtt": {"enabled": False},
        "rules": {"enabled": rules},
        "cluster": {
            "enabled": True,
            "node": "bench",
            "servers": list(servers),
            "stream": name.upper(),
            "subjects": [f"{name}.>"],
            "subject": f"{name}.ingest",
            **(cluster or {}),
        },
    }
    config = work / "gateway.toml"
    config.write_text(_toml(sections))
    return Node(config, port, metrics_base, name)


def start_node(
    config: Path, ingest: int, writers: int, log: Path, rules: int = 0
) -> subprocess.Popen[bytes]:
    """`pollution-gateway cluster-node` on `config`, its output appended to `log`."""
    argv = [sys.executable, "-m", "gateway.cli", "cluster-node", "--config", str(config)]
    argv += ["--ingest", str(ingest), "--writers", str(writers), "--rules", str(rules)]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_node(node: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the launcher (it stops its processes), SIGKILL past 60 s."""
    node.send_signal(signal.SIGTERM)
    try:
        node.wait(60)
    except subprocess.TimeoutExpired:
        stop(node)


async def remove_streams(servers: Sequence[str], streams: Sequence[str]) -> None:
    """Delete a run's streams (a KV bucket is the stream `KV_<bucket>`): each reserves its
    `max_bytes` of the servers' file store, which the next run's would not find."""
    nc = await nats.connect(servers=list(servers), connect_timeout=2)
    try:
        js = nc.jetstream()
        for stream in streams:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
    finally:
        await nc.close()


def metric_or_nan(port: int, name: str) -> float:
    try:
        return metric(port, name)
    except OSError:  # not listening (yet, or any more)
        return math.nan


async def wait_up(port: int, limit_s: float = 120.0) -> float:
    """Until a process's metrics answer (they start after its listeners); seconds waited."""
    started = time.monotonic()
    while True:
        if not math.isnan(
            await asyncio.to_thread(metric_or_nan, port, "process_cpu_seconds_total")
        ):
            return time.monotonic() - started
        if time.monotonic() - started > limit_s:
            raise RuntimeError(f"no metrics on port {port} in {limit_s:g} s")
        await asyncio.sleep(0.1)


def process_name(cmdline: Sequence[str]) -> str | None:
    """`ingest-0`, `writer-1`, `rules-0`: the node process a command line runs, if any."""
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "--process":
            try:
                return NodeProcess.parse(cmdline[i + 1]).name
            except ValueError:
                return None
    return None


def node_pids(launcher: int) -> dict[str, int]:
    """The launcher's processes by name."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
            except OSError:  # ended meanwhile
                continue
            name = process_name(cmdline)
            if name is not None:
                found[name] = int(child)
    return found


def parse_open_files(limits: str) -> tuple[int, int]:
    """(soft, hard) of the `Max open files` line of a /proc/<pid>/limits text."""
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            soft, hard = line[len("Max open files") :].split()[:2]
            return int(soft), int(hard)
    raise ValueError("no 'Max open files' line")


def open_files(pid: int) -> tuple[int, int]:
    return parse_open_files(Path(f"/proc/{pid}/limits").read_text())


def descriptors(pid: int) -> int:
    """File descriptors `pid` holds now."""
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def raise_open_files() -> tuple[int, int]:
    """This process's soft RLIMIT_NOFILE raised to the hard limit; (soft, hard) after."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard, hard


def source_address(index: int, per_address: int, first: int = 2) -> str:
    """The loopback source address of client connection `index`: `per_address` connections
    each from 127.0.0.<first>, 127.0.0.<first + 1>, ... (one source address has about 28,000
    ephemeral ports per destination)."""
    host = first + index // per_address
    if not 0 < host < 1 << 24:
        raise ValueError(f"connection {index}: no loopback address left")
    return str(ipaddress.IPv4Address("127.0.0.0") + host)


def shares(total: int, parts: int) -> list[tuple[int, int]]:
    """(first index, count) of each of `parts` consecutive slices of `total`, sizes within 1."""
    size, extra = divmod(total, parts)
    out, first = [], 0
    for part in range(parts):
        count = size + (part < extra)
        out.append((first, count))
        first += count
    return out


async def influx_query(url: str, database: str, q: str, timeout_s: float = 120.0) -> Any:
    """The `series` of the first result of an InfluxDB 1.x query (slow ones included)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    params = {"db": database, "q": q}
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{url}/query", params=params) as resp,
    ):
        resp.raise_for_status()
        body = await resp.json()
    return body["results"][0].get("series", [])


async def emission_points(url: str, database: str) -> dict[str, int]:
    """Points of `emission` in InfluxDB by MN."""
    series = await influx_query(url, database, "SELECT count(avg) FROM emission GROUP BY mn")
    return {s["tags"]["mn"]: int(s["values"][0][1]) for s in series}


async def count_points(url: str, database: str) -> int:
    series = await influx_query(url, database, "SELECT count(avg) FROM emission")
    return int(series[0]["values"][0][1]) if series else 0


def percentiles(name: str, values: Sequence[float]) -> dict[str, float]:
    """`<name>_samples`, `_p50_ms`, `_p99_ms` and `_max_ms` of latencies in seconds (NaN
    without samples)."""
    ordered = sorted(values)
    if not ordered:
        return {f"{name}_samples": 0, f"{name}_p50_ms": math.nan, f"{name}_p99_ms": math.nan}

    def at(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        f"{name}_samples": len(ordered),
        f"{name}_p50_ms": at(0.5) * 1000,
        f"{name}_p99_ms": at(0.99) * 1000,
        f"{name}_max_ms": ordered[-1] * 1000,
    }


def print_results(results: Mapping[str, float | int | str]) -> None:
    width = max(map(len, results))
    for name, value in results.items():
        if isinstance(value, float):
            print(f"{name:<{width}}  {value:,.2f}")
        elif isinstance(value, int):
            print(f"{name:<{width}}  {value:,}")
        else:
            print(f"{name:<{width}}  {value}")
