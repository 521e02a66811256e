"""SIGKILL of the city gateway (a process) while it forwards: after the restart nothing the
devices had acknowledged is missing upstream; resent frames are the same points."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

from adapters.hj212.device import DeviceClient
from devkit import localstack
from tests.integration.test_faults import connect_when_up, start_gateway_process

from .kit import (
    UP_PASSWORD,
    city_config,
    minute_upload,
    provincial_config,
    start_gateway,
    wait_values,
)


async def test_sigkill_while_forwarding_loses_nothing_upstream(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    up_db = "up_" + uuid.uuid4().hex[:10]
    up_port, city_port = localstack.free_port(), localstack.free_port()
    province = await start_gateway(provincial_config(tmp_path / "prov", influx.url, up_db, up_port))
    config = city_config(
        tmp_path / "city",
        influx.url,
        database,
        [
            {
                "name": "province",
                "address": f"127.0.0.1:{up_port}",
                "password": UP_PASSWORD,
                "window": 8,
                "rate_per_s": 200,  # slower than the devices: a backlog at the kill
                "ack_timeout_s": 2,
                "backoff_min_s": 0.2,
                "backoff_max_s": 1,
                "cursor_every": 50,
            }
        ],
        hj212={"listen": f"127.0.0.1:{city_port}"},
    )
    log = tmp_path / "city.log"
    acked: set[int] = set()
    try:
        proc = start_gateway_process(config, log)
        try:
            clients = [await connect_when_up(city_port) for _ in range(4)]

            async def pump(client: DeviceClient, offset: int) -> None:
                i = offset
                while True:
                    await client.send(minute_upload(i))
                    if (await client.read_frame(5)).cn == "9014":
                        acked.add(i)
                    i += 4

            pumps = [asyncio.create_task(pump(c, k)) for k, c in enumerate(clients)]
            await asyncio.sleep(2.5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*pumps, return_exceptions=True)
            for c in clients:
                await c.close()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert len(acked) > 100, f"only {len(acked)} frames acked before the kill"
        before = await wait_values(influx.url, up_db, 0, timeout_s=0)
        assert len(before) < len(acked), "the kill should leave a backlog"
        restarted = start_gateway_process(config, log)
        try:
            got = await wait_values(influx.url, up_db, len(acked), timeout_s=90)
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(20) == 0, log.read_text()[-2000:]
    finally:
        await province.shutdown()
    missing = acked - {int(v) for v in got}
    assert not missing, f"{len(missing)} acknowledged frames missing upstream"
    # each value once as a point: a resent frame is the same point (series and time)
    assert len(got) == len(set(got))
    assert all(v == float(int(v)) for v in got)
