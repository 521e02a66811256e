"""Fault injection: InfluxDB stopped mid-stream, and the gateway killed with SIGKILL.
In both, every acknowledged value must be in InfluxDB in the end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config
from tests.frames import qn_for, upload

BASE = datetime(2026, 4, 1, 0, 0)


def frame_for(i: int) -> bytes:
    """Upload i: its own minute, one value that encodes i."""
    return upload(
        cn="2051", qn=qn_for(i), data_time=BASE + timedelta(minutes=i), values={"w01018": float(i)}
    )


async def count_values(url: str, db: str) -> int:
    rows = await asyncio.to_thread(influx_rows, url, db, "SELECT count(avg) FROM emission")
    return int(rows[0]["count"]) if rows else 0


async def wait_count(url: str, db: str, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        try:
            count = await count_values(url, db)
        except localstack.LocalStackError:
            count = 0
        if count >= expected:
            return count
        await asyncio.sleep(0.2)
    return count


async def test_influxdb_stopped_mid_stream_nothing_acked_is_lost(
    own_influx: localstack.ManagedProcess,
    gateway_config: Callable[..., LoadedConfig],
    database: str,
) -> None:
    gw = Gateway(gateway_config(influx_url=own_influx.url))
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        total = 300
        for i in range(total):
            if i == 100:
                await asyncio.to_thread(own_influx.stop)
            if i == 250:
                await asyncio.to_thread(own_influx.start)
            await dev.send(frame_for(i))
            ack = await dev.read_frame(10)
            assert (ack.cn, ack.qn) == ("9014", qn_for(i))
        assert gw.forwarder.healthy or gw.spool.depth_bytes >= 0
        got = await wait_count(own_influx.url, database, total, 30)
        assert got == total
        rows = influx_rows(own_influx.url, database, "SELECT avg FROM emission")
        assert sorted(r["avg"] for r in rows) == [float(i) for i in range(total)]
        await dev.close()
    finally:
        await gw.shutdown()
    assert gw.spool.depth_bytes == 0


def start_gateway_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )


async def connect_when_up(port: int, timeout_s: float = 20) -> DeviceClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await DeviceClient.connect("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_gateway_sigkill_every_acked_point_present_after_restart(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    port = localstack.free_port()
    config = write_config(
        tmp_path / "gw",
        influx.url,
        database,
        hj212={"listen": f"127.0.0.1:{port}"},
        influx={"flush_interval_s": 2.0, "batch_lines": 100000},
    )
    log = tmp_path / "gateway.log"
    proc = start_gateway_process(config, log)
    acked: set[int] = set()
    sent = 0
    try:
        clients = [await connect_when_up(port) for _ in range(4)]

        async def pump(client: DeviceClient, offset: int) -> None:
            nonlocal sent
            i = offset
            while True:
                await client.send(frame_for(i))
                sent += 1
                ack = await client.read_frame(5)
                acked.add(int(ack.qn[-6:]) if ack.qn else -1)
                i += 4

        pumps = [asyncio.create_task(pump(c, k)) for k, c in enumerate(clients)]
        await asyncio.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)  # long flush interval: most acked data is spool-only
        proc.wait(10)
        results = await asyncio.gather(*pumps, return_exceptions=True)
        assert all(isinstance(r, (ConnectionError, TimeoutError, OSError)) for r in results)
        for c in clients:
            await c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    acked_values = {qn_index_to_value(k) for k in acked}
    assert len(acked_values) > 50, f"only {len(acked_values)} frames acked before the kill"
    restarted = start_gateway_process(config, log)
    try:
        got = await wait_count(influx.url, database, len(acked_values), 30)
        rows = influx_rows(influx.url, database, "SELECT avg FROM emission")
        stored = {int(r["avg"]) for r in rows}
        missing = acked_values - stored
        assert not missing, f"{len(missing)} acked values lost, e.g. {sorted(missing)[:5]}"
        assert got >= len(acked_values)
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0, log.read_text()[-2000:]


def qn_index_to_value(suffix: int) -> int:
    """qn_for(i) is 09:00:00 + i ms, so the last 6 digits are seconds*1000 + ms = i."""
    return suffix
