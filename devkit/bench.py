"""``pollution-gateway bench``: throughput, ack latency and memory, measured in one run.

Starts its own InfluxDB (Debian's 1.x) under the work folder, measures the raw line-protocol
ingest rate as the yardstick, then runs the gateway as a separate process and drives it with
simulated data loggers over TCP from this process:

1. raw InfluxDB ingest (points/s), 5000-line batches;
2. HJ 212 over TCP -> InfluxDB end to end (frames/s, points/s), every acked point counted back;
3. the gateway alone (InfluxDB unreachable, everything lands in the spool), frames/s;
4. ack latency p50/p99 at a paced 2,000 frames/s on a fresh gateway: alone, while a separate
   process holds `--bad` bad connections open (silent, slow and junk senders; see
   `bench_hostile`), and alone again;
5. resident memory of the gateway holding N idle connections;
6. with `[archive] enabled = false`, the ack latency (alone) and the gateway alone again, beside
   the runs above, which archive every frame (the default);
7. forwarding upstream (`bench_forward`): the ack latency with the platform down, then while it
   catches up, and the time until it holds every acked point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import resource
import shutil
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from adapters.hj212.builder import build_frame, build_segment
from devkit import bench_hostile, localstack
from devkit.bench_forward import forward_runs
from devkit.bench_mqtt import mqtt_runs
from devkit.benchkit import (
    POLLUTANTS,
    bench_frame,
    bench_mn,
    count_measurement,
    write_config,
)
from devkit.process import metric, rss_mb, start_gateway, stop, wait_port


class _Loader(asyncio.Protocol):
    """A pipelining data logger: keeps `window` frames unacknowledged, counts 9014s."""

    def __init__(self, frames: list[bytes], window: int, done: asyncio.Future[None]) -> None:
        self.frames = frames
        self.window = window
        self.done = done
        self.sent = 0
        self.acked = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._fill()

    def data_received(self, data: bytes) -> None:
        self.acked += data.count(b"CN=9014")
        if self.acked >= len(self.frames):
            if not self.done.done():
                self.done.set_result(None)
            return
        self._fill()

    def _fill(self) -> None:
        assert self.transport is not None
        end = min(len(self.frames), self.acked + self.window)
        if end > self.sent:
            self.transport.write(b"".join(self.frames[self.sent : end]))
            self.sent = end

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _drive(
    port: int, per_conn: list[list[bytes]], window: int, limit_s: float
) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    loaders: list[_Loader] = []
    started = time.perf_counter()
    for frames in per_conn:
        done: asyncio.Future[None] = loop.create_future()
        loader = _Loader(frames, window, done)
        await loop.create_connection(lambda loader=loader: loader, "127.0.0.1", port)  # type: ignore[misc]
        loaders.append(loader)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ld.done for ld in loaders)), limit_s)
    elapsed = time.perf_counter() - started
    for ld in loaders:
        if ld.transport is not None:
            ld.transport.close()
    return sum(ld.acked for ld in loaders), elapsed


async def _paced_latency(
    port: int, rate: float, seconds: float, devices: int, base: datetime
) -> list[float]:
    """Send `rate` frames/s spread over `devices` connections; return ack latencies (s)."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(devices)]
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []

    async def reader(r: asyncio.StreamReader) -> None:
        while True:
            line = await r.readline()
            if not line:
                return
            q = line.find(b"QN=")
            if q >= 0:
                t0 = sent_at.pop(line[q + 3 : q + 20], None)
                if t0 is not None:
                    latencies.append(time.perf_counter() - t0)

    readers = [asyncio.create_task(reader(r)) for r, _ in streams]
    interval = 1.0 / rate
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        k = i % devices
        frame = bench_frame(bench_mn(k), 200000 + i, base)
        qn = frame[frame.find(b"QN=") + 3 : frame.find(b"QN=") + 20]
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[qn] = time.perf_counter()
        streams[k][1].write(frame)
    await asyncio.sleep(1.0)
    for r in readers:
        r.cancel()
    for _, w in streams:
        w.close()
    return latencies


def _without_archive(config: Path) -> Path:
    """The same gateway with the frame archive off."""
    config.write_text(config.read_text() + "[archive]\nenabled = false\n")
    return config


async def _latency(
    work: Path, influx_url: str, args: argparse.Namespace, *, archive: bool = True
) -> dict[str, float]:
    """Ack latency at a paced 2,000 frames/s from 50 devices on a fresh gateway: alone, while a
    separate process holds `args.bad` bad connections open, and alone again after them (without
    the archive: alone only)."""
    port, mport = localstack.free_port(), localstack.free_port()
    shutil.rmtree(work / "gw", ignore_errors=True)
    config = write_config(work, port, influx_url, 50, mport)
    gw = start_gateway(
        config if archive else _without_archive(config), work / "gateway-latency.log"
    )
    try:
        await wait_port(port)
        await asyncio.sleep(1.0)
        paced = functools.partial(_paced_latency, port, 2000.0, args.seconds, 50)
        name = "ack_latency" if archive else "ack_latency_archive_off"
        results = _percentiles(name, await paced(datetime(2025, 6, 1)))
        if not args.bad or not archive:
            return results
        closed = "hj212_connections_closed_total"
        closed_before = _or_zero(metric(mport, closed))
        bad = bench_hostile.start(port, args.bad)
        try:
            deadline = time.perf_counter() + 120
            while metric(mport, "hj212_connections_open") < args.bad:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the bad connections did not open in 120 s")
                await asyncio.sleep(0.5)
            results["bad_connections_open"] = metric(mport, "hj212_connections_open")
            results["rss_mb_with_bad"] = rss_mb(gw.pid)
            results.update(_percentiles("ack_latency_with_bad", await paced(datetime(2025, 7, 1))))
            results["bad_closed_by_gateway"] = _or_zero(metric(mport, closed)) - closed_before
        finally:
            bad.terminate()
            bad.join(10)
        results.update(_percentiles("ack_latency_after_bad", await paced(datetime(2025, 8, 1))))
        return results
    finally:
        stop(gw)


async def _raw_ingest(url: str, points: int) -> float:
    """Points/s InfluxDB takes directly: 5000-line batches, two writers."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/query", data={"q": 'CREATE DATABASE "raw"'}) as resp:
            resp.raise_for_status()
        base = 1_700_000_000_000_000_000
        bodies = [
            "".join(
                f"emission,enterprise=E,outlet=O{(b * 5000 + j) % 50},mn=M{(b * 5000 + j) % 50},"
                f"pollutant={POLLUTANTS[j % 6]},interval=minute min={j}.5,avg={j}.25,max={j}.75,"
                f'flag="N",backfill=false {base + (b * 5000 + j) * 60_000_000_000}\n'
                for j in range(5000)
            ).encode()
            for b in range(points // 5000)
        ]
        queue = list(bodies)
        started = time.perf_counter()

        async def writer() -> None:
            while queue:
                body = queue.pop()
                async with session.post(
                    f"{url}/write", params={"db": "raw", "precision": "ns"}, data=body
                ) as resp:
                    if resp.status != 204:
                        raise RuntimeError(f"raw write failed: {resp.status} {await resp.text()}")

        await asyncio.gather(writer(), writer())
        return len(bodies) * 5000 / (time.perf_counter() - started)


def _percentiles(name: str, latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        f"{name}_samples": len(latencies),
        f"{name}_p50_ms": statistics.median(latencies) * 1000,
        f"{name}_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def _or_zero(value: float) -> float:
    return 0.0 if value != value else value  # a counter not yet incremented is absent (NaN)


def _count(url: str) -> int:
    return count_measurement(url, "emission", "avg")


async def _idle(port: int, count: int) -> list[Any]:
    """Open `count` connections from several loopback source addresses; each says one heartbeat."""
    hb = build_frame(
        build_segment(
            [
                ("QN", "20260101000000000"),
                ("ST", "31"),
                ("CN", "9015"),
                ("PW", "123456"),
                ("MN", bench_mn(0)),
                ("Flag", 8),
            ]
        )
    )
    writers: list[Any] = []
    for i in range(count):
        source = f"127.0.0.{2 + i // 20000}"
        _, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        w.write(hb)
        writers.append(w)
    await asyncio.sleep(2.0)
    return writers


async def _bench(args: argparse.Namespace) -> dict[str, float]:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict[str, float] = {}
    influx = localstack.influxdb(work / "influxdb")
    influx.start()
    try:
        results["raw_influx_points_per_s"] = await _raw_ingest(influx.url, 500_000)
        conns = args.connections
        port, mport = localstack.free_port(), localstack.free_port()
        config = write_config(work, port, influx.url, conns, mport)
        gw = start_gateway(config, work / "gateway.log")
        await wait_port(port)
        base = datetime(2025, 1, 1)
        per_conn_frames = int(args.frames / conns)
        frames = [
            [bench_frame(bench_mn(k), i, base) for i in range(per_conn_frames)]
            for k in range(conns)
        ]
        started = time.perf_counter()
        acked, elapsed = await _drive(port, frames, 64, args.seconds * 6)
        results["e2e_frames_acked"] = acked
        results["e2e_ack_frames_per_s"] = acked / elapsed
        expected = acked * len(POLLUTANTS)
        while _count(influx.url) < expected and time.perf_counter() - started < 300:
            await asyncio.sleep(0.2)
        total = time.perf_counter() - started
        stored = _count(influx.url)
        results["e2e_points_verified"] = stored
        results["e2e_points_expected"] = expected
        results["e2e_points_per_s"] = stored / total
        results["e2e_vs_raw"] = results["e2e_points_per_s"] / results["raw_influx_points_per_s"]
        results["e2e_archive_records"] = metric(mport, "archive_records_total")
        results["e2e_archive_mb"] = metric(mport, "archive_bytes_total") / 1e6
        stop(gw)
        results.update(await _latency(work, influx.url, args))

        # the gateway alone: InfluxDB unreachable, everything goes to the spool
        dead = f"http://127.0.0.1:{localstack.free_port()}"
        port2, mport2 = localstack.free_port(), localstack.free_port()
        shutil.rmtree(work / "gw", ignore_errors=True)
        config2 = write_config(work, port2, dead, conns, mport2)
        gw2 = start_gateway(config2, work / "gateway-alone.log")
        await wait_port(port2)
        acked2, elapsed2 = await _drive(port2, frames, 256, args.seconds * 6)
        results["alone_frames_per_s"] = acked2 / elapsed2
        results["alone_points_per_s"] = acked2 * len(POLLUTANTS) / elapsed2
        stop(gw2)
        shutil.rmtree(work / "gw", ignore_errors=True)
        port4, mport4 = localstack.free_port(), localstack.free_port()
        config4 = _without_archive(write_config(work, port4, dead, conns, mport4))
        gw4 = start_gateway(config4, work / "gateway-alone-archive-off.log")
        await wait_port(port4)
        acked4, elapsed4 = await _drive(port4, frames, 256, args.seconds * 6)
        results["alone_archive_off_frames_per_s"] = acked4 / elapsed4
        stop(gw4)
        results.update(await _latency(work, influx.url, args, archive=False))

        # memory: a fresh gateway process, so that freed memory from the runs above is not reused
        port3, mport3 = localstack.free_port(), localstack.free_port()
        shutil.rmtree(work / "gw", ignore_errors=True)
        gw3 = start_gateway(
            write_config(work, port3, influx.url, conns, mport3), work / "gateway-idle.log"
        )
        await wait_port(port3)
        await asyncio.sleep(1.0)
        rss_before = rss_mb(gw3.pid)
        writers = await _idle(port3, args.idle)
        rss_after = rss_mb(gw3.pid)
        results["idle_connections"] = args.idle
        results["idle_connections_open_in_gateway"] = metric(mport3, "hj212_connections_open")
        results["rss_mb_before_idle"] = rss_before
        results["rss_mb_with_idle"] = rss_after
        per_conn_kb = (rss_after - rss_before) * 1024 / max(1, args.idle)
        results["rss_kb_per_idle_connection"] = per_conn_kb
        results["rss_mb_extrapolated_50k_idle"] = rss_before + per_conn_kb * 50_000 / 1024
        for w in writers:
            w.close()
        stop(gw3)
        paced = functools.partial(_paced_latency, rate=2000.0, seconds=args.seconds, devices=50)
        results.update(
            await forward_runs(
                work, influx.url, lambda port, base: paced(port, base=base), _percentiles
            )
        )
        if not args.skip_mqtt:
            results.update(await mqtt_runs(work, influx.url, args.mqtt_messages))
    finally:
        influx.stop()
    return results


def main(args: argparse.Namespace) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"machine: {os.cpu_count()} cores; InfluxDB {localstack.find_binary('influxd')}", flush=True
    )
    results = asyncio.run(_bench(args))
    width = max(map(len, results))
    for key, value in results.items():
        print(
            f"{key:<{width}}  {value:,.2f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value:,}"
        )
    return 0
