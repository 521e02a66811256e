"""Devices -> city gateway -> provincial gateway (a second gateway, its own data folder,
InfluxDB database and port), real sockets and InfluxDB: every record once upstream, re-framed
with the upstream password; the upstream down for a while, then back: the whole backlog in
order."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx

from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import parse_frame
from devkit import localstack
from gateway.forward.deliveries import DeliveryLog
from tests.frames import qn_for

from .kit import (
    UP_PASSWORD,
    archived_frames,
    city_config,
    minute_upload,
    provincial_config,
    start_gateway,
    values_upstream,
    wait_values,
)

_VALUE = re.compile(rb"w01018-Avg=([0-9.]+)")


def target(port: int, **extra: object) -> dict[str, object]:
    return {
        "name": "province",
        "address": f"127.0.0.1:{port}",
        "password": UP_PASSWORD,
        "ack": True,
        "ack_timeout_s": 2,
        "backoff_min_s": 0.2,
        "backoff_max_s": 1,
        "rate_per_s": 500,
        **extra,
    }


async def send_all(dev: DeviceClient, frames: list[bytes]) -> None:
    for raw in frames:
        await dev.send(raw)
        ack = await dev.read_frame(10)
        assert ack.cn == "9014"


async def test_every_record_reaches_the_provincial_influxdb_once(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    up_db = "up_" + uuid.uuid4().hex[:10]
    port = localstack.free_port()
    province = await start_gateway(provincial_config(tmp_path / "prov", influx.url, up_db, port))
    city = await start_gateway(
        city_config(tmp_path / "city", influx.url, database, [target(port, window=4)])
    )
    total = 60
    try:
        dev = await DeviceClient.connect("127.0.0.1", city.hj212.port)
        await send_all(dev, [minute_upload(i) for i in range(total)])
        await dev.close()
        got = await wait_values(influx.url, up_db, total)
        assert sorted(got) == [float(i) for i in range(total)]  # each once
        assert city.forward is not None
        status = city.forward.status()[0]
        assert status["acked"] >= total and status["connected"] is True
        assert city.api is not None
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{city.api.port}/readyz")
        assert answer.status_code == 200
        (shown,) = answer.json()["forward"]
        assert shown["name"] == "province" and shown["acked"] >= total
    finally:
        await city.shutdown()
        await province.shutdown()
    # upstream: the device's frames with the upstream password, CRC recomputed
    frames = [parse_frame(raw) for raw in archived_frames(province.loaded.data_dir / "archive")]
    uploads = [f for f in frames if f.cn == "2051"]
    assert {f.pw for f in uploads} == {UP_PASSWORD}
    assert [f.qn for f in uploads][:total] == [qn_for(i) for i in range(total)]
    # what went where: one line per delivered frame, acknowledged
    logged = DeliveryLog(city.loaded.data_dir / "forward" / "province").read()
    assert len(logged) >= total and all(line["acked_at"] for line in logged)
    assert (city.loaded.data_dir / "forward" / "province.cursor.json").exists()


async def test_upstream_down_then_back_gets_the_whole_backlog_in_order(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    up_db = "up_" + uuid.uuid4().hex[:10]
    port = localstack.free_port()
    prov_config = provincial_config(tmp_path / "prov", influx.url, up_db, port)
    province = await start_gateway(prov_config)
    city = await start_gateway(city_config(tmp_path / "city", influx.url, database, [target(port)]))
    i = 0
    try:
        dev = await DeviceClient.connect("127.0.0.1", city.hj212.port)
        await send_all(dev, [minute_upload(k) for k in range(20)])
        i = 20
        assert len(await wait_values(influx.url, up_db, 20)) == 20
        await province.shutdown()  # the upstream goes away for about 15 s
        loop = asyncio.get_running_loop()
        until = loop.time() + 15
        while loop.time() < until:  # the devices go on, the city gateway acknowledges
            await send_all(dev, [minute_upload(i)])
            i += 1
            await asyncio.sleep(0.05)
        assert city.forward is not None
        down = city.forward.status()[0]
        assert down["connected"] is False and down["backlog_bytes"] > 0 and down["lag_s"] > 0
        assert len(await values_upstream(influx.url, up_db)) == 20
        province = await start_gateway(prov_config)  # back, same port and data folder
        got = await wait_values(influx.url, up_db, i, timeout_s=90)
        assert sorted(got) == [float(k) for k in range(i)]
        await dev.close()
    finally:
        await city.shutdown()
        await province.shutdown()
    order = [
        int(float(m.group(1)))
        for raw in archived_frames(province.loaded.data_dir / "archive")
        if (m := _VALUE.search(raw))
    ]
    firsts = list(dict.fromkeys(order))  # resends aside, in the order they first came
    assert firsts == list(range(i))
