"""Processes killed mid-run (`bench-cluster --kill N`): one `cluster-node` of N ingestion
processes, `--writers` writers and two rule workers (`rule_workers = true`, the anomaly store
in PostgreSQL), under load from data loggers that send again what was not acknowledged
(bench_loggers.py), over enterprises covering every rule partition:

1. saturated: the loggers as fast as their windows allow for 2 x `--seconds`, the last
   ingestion process SIGKILLed halfway (the node starts it again; with N = 1 the devices
   have nowhere to go meanwhile): frames/s acknowledged
   before and after, the worst second after, the time until it answered again;
2. once the writers emptied the points stream and the rule workers judged the backlog,
   every connection opened again (the kernel spreads them over the processes again), then
   paced at `--rate` frames/s, the same kill halfway: ack p50/p99 of the frames first sent
   before and after it; frame -> anomaly: a probe device of each enterprise sends an hourly
   frame over its limit (then one under it, which closes the anomaly), and the time from that
   frame's first send to the NOTIFY of its `over_limit` from the shared store;
3. still paced, one of the two rule workers SIGKILLed (the node starts it again): the time
   until every partition is leased by a live worker, until the first anomaly of a probe of
   one of its partitions sent after the kill is recorded, and the partitions that changed
   owner until `--settle` s after both (leases lost while a take-over replays move them again);
4. points lost: in the end every frame sent was acknowledged, so the points of each MN's
   frames 0..sent-1 must all be in InfluxDB; each MN's are counted back. A probe's anomaly
   not heard of 30 s after the last acknowledgement counts as missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import signal
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from adapters.hj212.builder import build_frame, build_segment
from devkit import bench_node, localstack
from devkit.bench_loggers import (
    Logger,
    acked_between,
    drain,
    latencies,
    pace,
    per_second,
    watch,
)
from devkit.bench_node import metric_or_nan, node_pids, percentiles, source_address
from devkit.bench_watch import AnomalyKey, AnomalyWatch, owners
from devkit.benchkit import POLLUTANTS, bench_frame, bench_mn
from gateway.cluster.partitions import partition_of

PARTITIONS = 16
_LOAD_BASE = datetime(2025, 3, 1)
_PROBE_BASE = datetime(2026, 6, 1)  # the probes' hours, Beijing time
_CST = timezone(timedelta(hours=8))
_LIMIT = '{ w01018 = { limit = 50, unit = "mg/L" } }'

Results = dict[str, float | int | str]


def covering(partitions: int, prefix: str = "E") -> list[str]:
    """Enterprise ids, one per partition: the one at index p is in partition p."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        n += 1
        found.setdefault(partition_of(f"{prefix}{n}", partitions), f"{prefix}{n}")
    return [found[p] for p in range(partitions)]


def probe_mn(j: int) -> str:
    return f"PROBE{j:019d}"


def probe_frame(mn: str, i: int) -> bytes:
    """Hour i of a probe: COD over its limit (80 mg/L) when i is even, under it when odd."""
    t = _PROBE_BASE + timedelta(hours=i)
    value = 80.0 if i % 2 == 0 else 20.0
    cp = f"DataTime={t:%Y%m%d%H%M%S};w01018-Avg={value},w01018-Flag=N"
    head: list[tuple[str, str | int]] = [
        ("QN", f"{t:%Y%m%d%H%M%S}000"),
        ("ST", "32"),
        ("CN", "2061"),
        ("PW", "123456"),
        ("MN", mn),
        ("Flag", 5),
    ]
    return build_frame(build_segment(head, cp))


def probe_key(enterprise: str, i: int) -> AnomalyKey:
    """The `over_limit` that probe hour i (even) opens."""
    return ("over_limit", enterprise, (_PROBE_BASE + timedelta(hours=i)).replace(tzinfo=_CST))


class Probes:
    """One probe device per enterprise; every 1/`per_s` s the next one sends an hour over its
    limit and an hour under it."""

    def __init__(self, port: int, enterprises: Sequence[str]) -> None:
        self.enterprises = list(enterprises)
        self.loggers = []
        for j in range(len(enterprises)):
            mn = probe_mn(j)
            source = source_address(j, 8, first=200)
            logger = Logger(port, functools.partial(probe_frame, mn), 8, name=mn, source=source)
            logger.keep_sent = True
            self.loggers.append(logger)

    async def run(self, per_s: float, stop: asyncio.Event) -> None:
        j = 0
        while not stop.is_set():
            logger = self.loggers[j]
            logger.allow(logger.allowed + 2)
            j = (j + 1) % len(self.loggers)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / per_s)

    def judged(
        self, seen: dict[AnomalyKey, float], start: float, end: float, parts: set[int] | None
    ) -> tuple[list[float], int]:
        """Frame -> anomaly of the over-limit hours first sent in [start, end) by the probes
        of `parts` (None: all): the latencies, and how many have no anomaly."""
        found, missing = [], 0
        for j, logger in enumerate(self.loggers):
            if parts is not None and j not in parts:
                continue
            for i, sent in logger.sent_at.items():
                if i % 2 or not start <= sent < end:
                    continue
                at = seen.get(probe_key(self.enterprises[j], i))
                if at is None:
                    missing += 1
                else:
                    found.append(at - sent)
        return found, missing


async def _kill_ingest(
    launcher: int, ingest: int, metrics_base: int, after_s: float
) -> tuple[float, float, float]:
    """SIGKILL the last ingestion process after `after_s`: (when, seconds until the process
    started again answers, the connections it held)."""
    await asyncio.sleep(after_s)
    pid = node_pids(launcher)[f"ingest-{ingest - 1}"]
    held = await asyncio.to_thread(
        metric_or_nan, metrics_base + ingest - 1, "hj212_connections_open"
    )
    os.kill(pid, signal.SIGKILL)
    killed = time.perf_counter()
    while Path(f"/proc/{pid}/fd").exists() and any(Path(f"/proc/{pid}/fd").iterdir()):
        await asyncio.sleep(0.01)  # until its sockets are closed
    await bench_node.wait_up(metrics_base + ingest - 1)
    return killed, time.perf_counter() - killed, held


def _rule_ports(node: bench_node.Node, ingest: int, writers: int) -> list[int]:
    return [node.metrics_base + ingest + writers + k for k in range(2)]


async def _summed(ports: Sequence[int], name: str = "cluster_rule_messages_total") -> float:
    """A counter summed over the rule workers that answer."""
    values = [await asyncio.to_thread(metric_or_nan, p, name) for p in ports]
    return sum(v for v in values if not math.isnan(v))


async def _drained(nc: Client, stream: str, limit_s: float = 180.0) -> float:
    """Until the points stream is empty (the writers wrote everything); seconds waited."""
    started = time.monotonic()
    js = nc.jetstream()
    while (await js.stream_info(stream)).state.messages and (time.monotonic() - started < limit_s):
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def _caught_up(ports: Sequence[int], limit_s: float = 180.0) -> float:
    """Until the rule workers judged nothing new for 2 s; seconds waited."""
    started = time.monotonic()
    last, still = await _summed(ports), time.monotonic()
    while time.monotonic() - started < limit_s:
        await asyncio.sleep(0.25)
        now = await _summed(ports)
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= 2.0:
            break
    return still - started


async def _leases(servers: Sequence[str], bucket: str) -> tuple[Client, KeyValue]:
    nc = await nats.connect(servers=list(servers), connect_timeout=2)
    deadline = time.monotonic() + 120
    while True:
        try:
            return nc, await nc.jetstream().key_value(bucket)
        except BucketNotFoundError:
            if time.monotonic() > deadline:
                await nc.close()
                raise RuntimeError(f"no lease bucket {bucket} in 120 s") from None
            await asyncio.sleep(0.25)


async def _split(kv: KeyValue, limit_s: float = 120.0) -> dict[int, str]:
    """Until every partition is leased, half by each worker."""
    deadline = time.monotonic() + limit_s
    while True:
        held = await owners(kv)
        counts = sorted(list(held.values()).count(w) for w in set(held.values()))
        if len(held) == PARTITIONS and counts == [PARTITIONS // 2] * 2:
            return held
        if time.monotonic() > deadline:
            raise RuntimeError(f"the partitions did not split between two workers: {held}")
        await asyncio.sleep(0.25)


def _rate(loggers: Sequence[Logger], start: float, end: float) -> float:
    return acked_between(loggers, start, end) / max(1e-9, end - start)


async def kill_run(
    work: Path,
    servers: list[str],
    influx_url: str,
    ingest: int,
    args: argparse.Namespace,
    raw_points_per_s: float,
) -> Results:
    """The runs above on one node; PostgreSQL started for it and removed after."""
    work.mkdir(parents=True, exist_ok=True)
    pg = localstack.postgres(work / "postgres")
    pg.start()
    try:
        dsn = pg.create_database("bench")
        return await _kill_run(work, servers, influx_url, ingest, args, raw_points_per_s, dsn)
    finally:
        localstack.remove_postgres(pg)


async def _kill_run(
    work: Path,
    servers: list[str],
    influx_url: str,
    ingest: int,
    args: argparse.Namespace,
    raw: float,
    dsn: str,
) -> Results:
    ents = covering(PARTITIONS)
    devices = args.connections
    name = f"kill{ingest}"
    enterprises = {
        ent: [*(bench_mn(k) for k in range(j, devices, len(ents))), probe_mn(j)]
        for j, ent in enumerate(ents)
    }
    limits = {probe_mn(j): _LIMIT for j in range(len(ents))}
    bucket = f"{name}_leases"
    rules_stream = f"{name.upper()}_RULES"
    node = bench_node.node_config(
        work,
        servers,
        influx_url,
        name,
        bench_node.registry_toml(enterprises, limits),
        rules=True,
        cluster={
            "rule_workers": True,
            "postgres_dsn": dsn,
            "partitions": PARTITIONS,
            "rules_stream": rules_stream,
            "rules_prefix": f"{name}r",
            "lease_bucket": bucket,
            **({"replay_s": args.replay_s} if args.replay_s else {}),
        },
    )
    launcher = bench_node.start_node(node.config, ingest, args.writers, work / "node.log", 2)
    key = f"kill_p{ingest}"
    results: Results = {}
    watcher = AnomalyWatch(dsn)
    stop = asyncio.Event()
    load = [
        Logger(
            node.port,
            functools.partial(bench_frame, bench_mn(k), base=_LOAD_BASE),
            name=bench_mn(k),
            source=source_address(k, 8),
        )
        for k in range(devices)
    ]
    probes = Probes(node.port, ents)
    everyone = load + probes.loggers
    nc: Client | None = None
    tasks: list[asyncio.Task[None]] = []
    rule_ports = _rule_ports(node, ingest, args.writers)
    seconds = args.seconds
    try:
        for offset in range(ingest + args.writers + 2):
            await bench_node.wait_up(node.metrics_base + offset)
        nc, kv = await _leases(servers, bucket)
        await _split(kv)
        watcher.start()
        for logger in everyone:
            await logger.start()
        tasks.append(asyncio.create_task(watch(everyone, stop)))

        # 1. saturated, an ingestion process killed halfway
        start = time.perf_counter()
        kill = asyncio.create_task(_kill_ingest(launcher.pid, ingest, node.metrics_base, seconds))
        await pace(load, 0, 2 * seconds)
        end = time.perf_counter()
        killed, back_s, held_at_kill = await kill
        results[f"{key}_sat_unacked_after_drain"] = await drain(load, 120.0)
        before, after = _rate(load, start + 1, killed), _rate(load, killed, end)
        results[f"{key}_sat_frames_per_s_before_kill"] = before
        results[f"{key}_sat_frames_per_s_after_kill"] = after
        results[f"{key}_sat_points_per_s_before_vs_raw"] = before * len(POLLUTANTS) / raw
        results[f"{key}_sat_points_per_s_after_vs_raw"] = after * len(POLLUTANTS) / raw
        worst = per_second(load, killed, min(end, killed + 5))
        results[f"{key}_sat_worst_second_after_kill_frames"] = min(worst) if worst else -1
        results[f"{key}_sat_killed_process_connections"] = held_at_kill
        results[f"{key}_sat_killed_process_back_s"] = back_s
        results[f"{key}_sat_reconnects"] = sum(lg.reconnects for lg in load)
        results[f"{key}_writers_catch_up_after_sat_s"] = await _drained(nc, name.upper())
        results[f"{key}_rules_catch_up_after_sat_s"] = await _caught_up(rule_ports)

        # 2. paced, the same kill, and probes, once the writers and rule workers caught up;
        # every connection opened again first, so that the kernel spreads them over the
        # processes again (the restarted one got none)
        for logger in everyone:
            logger.resume()
            logger.reconnect()
        await asyncio.sleep(1.0)
        reconnects = sum(lg.reconnects for lg in load)
        probing = asyncio.Event()
        tasks.append(asyncio.create_task(probes.run(args.probes_per_s, probing)))
        start = time.perf_counter()
        kill = asyncio.create_task(_kill_ingest(launcher.pid, ingest, node.metrics_base, seconds))
        await pace(load, args.rate, 2 * seconds)
        end = time.perf_counter()
        paced_kill, back_s, held_at_kill = await kill
        results[f"{key}_paced_rate"] = args.rate
        results[f"{key}_paced_frames_per_s_before_kill"] = _rate(load, start + 1, paced_kill)
        results[f"{key}_paced_frames_per_s_after_kill"] = _rate(load, paced_kill, end)
        worst = per_second(load, paced_kill, min(end, paced_kill + 5))
        results[f"{key}_paced_worst_second_after_kill_frames"] = min(worst) if worst else -1
        results[f"{key}_paced_killed_process_connections"] = held_at_kill
        results[f"{key}_paced_killed_process_back_s"] = back_s
        results[f"{key}_paced_reconnects"] = sum(lg.reconnects for lg in load) - reconnects
        results.update(
            percentiles(f"{key}_ack_before_kill", latencies(load, start + 1, paced_kill))
        )
        results.update(percentiles(f"{key}_ack_after_kill", latencies(load, paced_kill, end)))

        # 3. still paced: a rule worker killed
        pacer = asyncio.create_task(pace(load, args.rate, 600.0))
        await asyncio.sleep(2.0)
        pids = node_pids(launcher.pid)
        victim = f"bench-rules-0-{pids['rules-0']}-"
        held = await owners(kv)
        parts = {p for p, w in held.items() if w.startswith(victim)}
        info = await nc.jetstream().stream_info(rules_stream)
        results[f"{key}_rules_stream_messages_at_worker_kill"] = info.state.messages
        results[f"{key}_rules_stream_mb_at_worker_kill"] = info.state.bytes / 1e6
        survivor_port = rule_ports[1]
        lost_before = await _summed([survivor_port], "cluster_rule_partitions_lost_total")
        taken_before = await _summed([survivor_port], "cluster_rule_partitions_taken_total")
        os.kill(pids["rules-0"], signal.SIGKILL)
        worker_killed = time.perf_counter()
        owned_s = first_s = math.nan
        now_held: dict[int, str] = {}
        last, moves = dict(held), 0  # a move: a partition found with another owner
        while (elapsed := time.perf_counter() - worker_killed) < args.takeover_limit:
            now_held = await owners(kv)
            moves += sum(w != last.get(p) for p, w in now_held.items())
            last.update(now_held)
            if math.isnan(owned_s) and (
                len(now_held) == PARTITIONS
                and not any(w.startswith(victim) for w in now_held.values())
            ):
                owned_s = elapsed
            if math.isnan(first_s):
                first_s = _first_seen(probes, watcher.opened, worker_killed, parts)
            known = not math.isnan(owned_s) and not math.isnan(first_s)
            if known and elapsed > max(owned_s, first_s) + args.settle:
                break
            await asyncio.sleep(0.1)
        pacer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacer
        takeover_end = time.perf_counter()
        survivor = {w for w in held.values() if not w.startswith(victim)}
        results[f"{key}_worker_partitions_killed"] = len(parts)
        results[f"{key}_worker_all_partitions_owned_s"] = owned_s
        results[f"{key}_worker_first_anomaly_of_its_partitions_s"] = first_s
        results[f"{key}_worker_its_partitions_taken_by_survivor"] = sum(
            now_held.get(p) in survivor for p in parts
        )
        results[f"{key}_worker_partition_moves_until_settled"] = moves
        results[f"{key}_worker_survivor_partitions_taken"] = (
            await _summed([survivor_port], "cluster_rule_partitions_taken_total") - taken_before
        )
        results[f"{key}_worker_survivor_leases_lost"] = (
            await _summed([survivor_port], "cluster_rule_partitions_lost_total") - lost_before
        )
        results[f"{key}_worker_restarted_leases_lost"] = await _summed(
            rule_ports[:1], "cluster_rule_partitions_lost_total"
        )
        probing.set()

        # 4. everything acknowledged, the anomalies given time, the points counted back
        results[f"{key}_frames_unacked_at_end"] = await drain(everyone, 120.0)
        deadline = time.monotonic() + 30.0  # the anomalies still missing: late, or never
        while probes.judged(watcher.opened, start, math.inf, None)[1] and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.5)
        seen = dict(watcher.opened)
        for label, lo, hi, which in (
            ("before_kill", start + 1, paced_kill, None),
            ("after_kill", paced_kill, end, None),
            ("worker_killed_its_partitions", worker_killed, takeover_end, parts),
            (
                "worker_killed_other_partitions",
                worker_killed,
                takeover_end,
                set(range(PARTITIONS)) - parts,
            ),
        ):
            found, missing = probes.judged(seen, lo, hi, which)
            results.update(percentiles(f"{key}_frame_to_anomaly_{label}", found))
            results[f"{key}_frame_to_anomaly_{label}_missing"] = missing
        results[f"{key}_anomaly_events_heard"] = watcher.events
        results.update(await _lost(influx_url, name, load, probes.loggers, f"{key}_"))
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for logger in everyone:
            logger.close()
        try:
            watcher.stop()
            if nc is not None:
                await nc.close()
        finally:
            bench_node.stop_node(launcher)
        await bench_node.remove_streams(servers, [name.upper(), rules_stream, f"KV_{bucket}"])
    return results


def _first_seen(
    probes: Probes, seen: dict[AnomalyKey, float], since: float, parts: set[int]
) -> float:
    """Seconds from `since` to the first anomaly heard of a probe of `parts` sent after it."""
    times = [
        at
        for j in parts
        for i, sent in probes.loggers[j].sent_at.items()
        if i % 2 == 0
        and sent >= since
        and (at := seen.get(probe_key(probes.enterprises[j], i))) is not None
    ]
    return min(times) - since if times else math.nan


async def _lost(
    influx_url: str, database: str, load: Sequence[Logger], probes: Sequence[Logger], key: str
) -> Results:
    """Each MN's points in InfluxDB against its frames sent (all acknowledged)."""
    want = {lg.name: lg.next * len(POLLUTANTS) for lg in load}
    want |= {lg.name: lg.next for lg in probes}
    deadline = time.monotonic() + 120
    while True:
        try:
            stored = await bench_node.emission_points(influx_url, database)
        except (TimeoutError, aiohttp.ClientError):  # InfluxDB still busy with the writes
            stored = {}
        missing = sum(max(0, n - stored.get(mn, 0)) for mn, n in want.items())
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return {
        f"{key}points_acked": sum(want.values()),
        f"{key}points_verified": sum(want.values()) - missing,
        f"{key}points_lost": missing,
    }
