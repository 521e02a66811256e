"""The benchmark's forwarding run: the devices' ack latency at a city gateway whose upstream
platform (a second gateway process, with its own InfluxDB database) is down, then back and
catching up; and the time until the platform holds every acked point.

The yardstick is the city gateway's own ack latency without a forward target, measured in the
same run (`ack_latency_*` of `bench`)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from devkit import localstack
from devkit.benchkit import POLLUTANTS, write_config
from devkit.process import metric, start_gateway, stop, wait_port

Paced = Callable[[int, datetime], Awaitable[list[float]]]  # (port, base) -> ack latencies
Percentiles = Callable[[str, list[float]], dict[str, float]]


def _province_points(url: str) -> int:
    rows = localstack.query(url, "bench_province", "SELECT count(avg) FROM emission")
    series = rows["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


async def forward_runs(
    work: Path, influx_url: str, paced: Paced, percentiles: Percentiles
) -> dict[str, float]:
    """Ack latency at the city with its platform down, then while it catches up; the backlog
    it built, the time to deliver it all, and the points the platform misses (must be 0)."""
    city, province = work / "city", work / "province"
    for folder in (city, province):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    pport, pmport = localstack.free_port(), localstack.free_port()
    pconfig = write_config(province, pport, influx_url, 50, pmport)
    pconfig.write_text(
        pconfig.read_text().replace('database = "bench"', 'database = "bench_province"')
    )
    cport, cmport = localstack.free_port(), localstack.free_port()
    cconfig = write_config(city, cport, influx_url, 50, cmport)
    cconfig.write_text(
        cconfig.read_text()
        + f'[[forward]]\nname = "province"\naddress = "127.0.0.1:{pport}"\nversion = "2017"\n'
        "ack = true\nack_timeout_s = 5\nrate_per_s = 5000\nwindow = 64\nbackoff_max_s = 2\n"
    )
    results: dict[str, float] = {}
    gw = start_gateway(cconfig, work / "gateway-city.log")
    upstream = None
    try:
        await wait_port(cport)
        await asyncio.sleep(1.0)
        down = await paced(cport, datetime(2025, 9, 1))
        results.update(percentiles("ack_latency_upstream_down", down))
        await asyncio.sleep(1.0)
        results["forward_backlog_records_when_back"] = metric(cmport, "forward_backlog_records")
        upstream = start_gateway(pconfig, work / "gateway-province.log")
        await wait_port(pport)
        back = await paced(cport, datetime(2025, 10, 1))
        results.update(percentiles("ack_latency_upstream_catching_up", back))
        expected = (len(down) + len(back)) * len(POLLUTANTS)  # every acked frame's points
        start = time.perf_counter()
        got = _province_points(influx_url)
        while got < expected and time.perf_counter() - start < 300:
            await asyncio.sleep(1.0)
            got = _province_points(influx_url)
        results["forward_all_delivered_s"] = time.perf_counter() - start
        results["forward_points_expected"] = expected
        results["forward_points_missing_upstream"] = max(0.0, expected - got)
        results["forward_acked"] = metric(cmport, "forward_acked_total")
        results["forward_retried"] = metric(cmport, "forward_retried_total")
        return results
    finally:
        stop(gw)
        if upstream is not None:
            stop(upstream)
