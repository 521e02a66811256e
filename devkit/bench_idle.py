"""Idle device connections held by a `cluster-node` (`bench-cluster --idle N`).

N registered devices each open a connection, log in with one upload (2051, 6 pollutants) and,
once it is acknowledged (9014), stay silent. The connections come from client processes of
their own (at most `--idle-per-client` each, under the open-file limit), each from its own
loopback source addresses (bound before connect, the port chosen at connect), so that neither
the client side nor one address's ephemeral ports limit the count. The figures: connections
held (and still open after `--hold` seconds), each ingestion process's share, resident memory
before and with them, RSS per connection, open-file limits per process, and every login's
points counted back from InfluxDB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import math
import multiprocessing
import os
import resource
import socket
import time
from collections.abc import Iterable
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import aiohttp

from devkit import bench_node
from devkit.bench_node import metric_or_nan, shares, source_address
from devkit.benchkit import POLLUTANTS, bench_frame, bench_mn
from devkit.process import rss_mb

_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux
_LOGIN_BASE = datetime(2025, 2, 1)


class _Held(asyncio.Protocol):
    """One device's connection: waits for the ack of its login, then only notes a close."""

    def __init__(self, acked: asyncio.Future[None]) -> None:
        self.acked = acked
        self.lost = False
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"CN=9014" in data and not self.acked.done():
            self.acked.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.acked.done():
            self.acked.set_exception(ConnectionError("closed before the login's ack"))


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


async def _open(port: int, index: int, per_address: int, timeout_s: float) -> _Held:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source_address(index, per_address), 0))
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout_s)
    except BaseException:
        sock.close()
        raise
    acked: asyncio.Future[None] = loop.create_future()
    transport, held = await loop.create_connection(lambda: _Held(acked), sock=sock)
    transport.write(bench_frame(bench_mn(index), 0, _LOGIN_BASE))
    try:
        await asyncio.wait_for(acked, timeout_s)
    except BaseException:
        transport.abort()
        raise
    return held


async def _hold(
    port: int, first: int, count: int, per_address: int, concurrency: int, pipe: Connection
) -> None:
    held: list[_Held] = []
    mine: list[int] = []  # the indices of the held connections
    failed: collections.Counter[str] = collections.Counter()
    indices = iter(range(first, first + count))
    started = time.perf_counter()
    give_up = max(200, count // 20)  # failures after which this client stops trying

    async def opener() -> None:
        for index in indices:
            if sum(failed.values()) >= give_up:
                return
            try:
                held.append(await _open(port, index, per_address, 10.0))
                mine.append(index)
            except (OSError, TimeoutError) as exc:
                failed[_why(exc)] += 1

    await asyncio.gather(*(opener() for _ in range(concurrency)))
    pipe.send(
        {
            "held": len(held),
            "indices": mine,
            "failed": dict(failed),
            "seconds": time.perf_counter() - started,
            "open_files": resource.getrlimit(resource.RLIMIT_NOFILE),
            "pid": os.getpid(),
        }
    )
    await asyncio.to_thread(pipe.recv)  # until told to stop
    pipe.send({"lost": sum(h.lost for h in held)})
    for h in held:
        if h.transport is not None:
            h.transport.close()


def _client(
    port: int, first: int, count: int, per_address: int, concurrency: int, pipe: Connection
) -> None:
    bench_node.raise_open_files()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_hold(port, first, count, per_address, concurrency, pipe))


def _start_clients(
    port: int, total: int, per_client: int, concurrency: int
) -> list[tuple[BaseProcess, Connection]]:
    """Client processes of at most `per_client` connections, each from its own addresses."""
    context = multiprocessing.get_context("spawn")
    clients: list[tuple[BaseProcess, Connection]] = []
    for first, count in shares(total, max(1, math.ceil(total / per_client))):
        mine, theirs = context.Pipe()
        proc = context.Process(
            target=_client,
            args=(port, first, count, per_client, concurrency, theirs),
            daemon=True,
        )
        proc.start()
        clients.append((proc, mine))
    return clients


async def _receive(pipe: Connection, limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while not await asyncio.to_thread(pipe.poll, 0.5):
        if time.monotonic() > deadline:
            raise RuntimeError(f"a client process said nothing in {limit_s:g} s")
    message: dict[str, Any] = pipe.recv()
    return message


def _sample(pids: dict[str, int], metrics_base: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, pid in pids.items():
        offset = int(name.rpartition("-")[2])
        out[name] = {
            "rss_mb": rss_mb(pid),
            "fds": float(bench_node.descriptors(pid)),
            "open": metric_or_nan(metrics_base + offset, "hj212_connections_open"),
        }
    return out


def _whole(values: Iterable[float]) -> int | str:
    """A sum of counts, or why there is none (a process whose metrics did not answer)."""
    total = sum(values)
    return "no answer" if math.isnan(total) else int(total)


async def _missing(url: str, database: str, mns: list[str], failed: int) -> int:
    """Points of the held logins not in InfluxDB. Without failed logins every stored point
    is a held one's, and the count says it; else each MN's are counted."""
    try:
        if not failed:
            return max(0, len(mns) * len(POLLUTANTS) - await bench_node.count_points(url, database))
        stored = await bench_node.emission_points(url, database)
    except (TimeoutError, aiohttp.ClientError):  # InfluxDB still busy with the writes
        return len(mns) * len(POLLUTANTS)
    return sum(max(0, len(POLLUTANTS) - stored.get(mn, 0)) for mn in mns)


async def idle_run(
    work: Path, servers: list[str], influx_url: str, ingest: int, args: argparse.Namespace
) -> dict[str, float | int | str]:
    """`args.idle` connections held by a node of `ingest` ingestion processes."""
    total = args.idle
    name = f"idle{ingest}"
    registry = bench_node.registry_toml({"BENCH": [bench_mn(i) for i in range(total)]})
    node = bench_node.node_config(work, servers, influx_url, name, registry)
    launcher = bench_node.start_node(node.config, ingest, args.writers, work / "node.log")
    key = f"idle_p{ingest}"
    results: dict[str, float | int | str] = {}
    clients: list[tuple[BaseProcess, Connection]] = []
    try:
        for offset in range(ingest + args.writers):
            await bench_node.wait_up(node.metrics_base + offset)
        await asyncio.sleep(1.0)
        pids = {n: p for n, p in bench_node.node_pids(launcher.pid).items() if "ingest" in n}
        before = _sample(pids, node.metrics_base)
        started = time.perf_counter()
        clients = _start_clients(node.port, total, args.idle_per_client, args.idle_concurrency)
        ready = [await _receive(pipe, 600.0) for _, pipe in clients]
        opened_s = time.perf_counter() - started
        await asyncio.sleep(2.0)
        held = sum(r["held"] for r in ready)
        failed: collections.Counter[str] = collections.Counter()
        for r in ready:
            failed.update(r["failed"])
        with_idle = _sample(pids, node.metrics_base)
        await asyncio.sleep(args.hold)
        after_hold = _sample(pids, node.metrics_base)
        for _, pipe in clients:
            pipe.send("stop")
        lost = sum([(await _receive(pipe, 60.0))["lost"] for _, pipe in clients])
        results[f"{key}_connections_wanted"] = total
        results[f"{key}_connections_held"] = held
        results[f"{key}_connections_failed"] = sum(failed.values())
        results[f"{key}_failures"] = ", ".join(f"{k} {v}" for k, v in failed.items()) or "none"
        results[f"{key}_open_s"] = opened_s
        results[f"{key}_opened_per_s"] = held / opened_s
        results[f"{key}_client_processes"] = len(clients)
        soft, hard = ready[0]["open_files"]
        results[f"{key}_client_open_files_limit"] = f"{soft} soft / {hard} hard"
        results[f"{key}_connections_open_in_node"] = _whole(s["open"] for s in with_idle.values())
        results[f"{key}_connections_open_after_{args.hold:g}s"] = _whole(
            s["open"] for s in after_hold.values()
        )
        results[f"{key}_connections_lost_during_hold"] = lost
        grown = sum(with_idle[n]["rss_mb"] - before[n]["rss_mb"] for n in pids)
        for n, pid in sorted(pids.items()):
            soft, hard = bench_node.open_files(pid)
            results[f"{key}_{n}_open_files_limit"] = f"{soft} soft / {hard} hard"
            results[f"{key}_{n}_connections"] = _whole([with_idle[n]["open"]])
            results[f"{key}_{n}_descriptors"] = _whole([with_idle[n]["fds"]])
            results[f"{key}_{n}_rss_mb_before"] = before[n]["rss_mb"]
            results[f"{key}_{n}_rss_mb_with_idle"] = with_idle[n]["rss_mb"]
        results[f"{key}_rss_mb_before_all"] = sum(s["rss_mb"] for s in before.values())
        results[f"{key}_rss_mb_with_idle_all"] = sum(s["rss_mb"] for s in with_idle.values())
        results[f"{key}_rss_kb_per_connection"] = grown * 1024 / max(1, held)
        mns = [bench_mn(i) for r in ready for i in r["indices"]]
        expected = len(mns) * len(POLLUTANTS)
        deadline = time.monotonic() + 120
        while True:
            missing = await _missing(influx_url, name, mns, failed.total())
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        results[f"{key}_login_points_expected"] = expected
        results[f"{key}_login_points_verified"] = expected - missing
        results[f"{key}_login_points_lost"] = missing
    finally:
        for proc, _ in clients:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
        bench_node.stop_node(launcher)
        await bench_node.remove_streams(servers, [name.upper()])
    return results
