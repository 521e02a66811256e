"""The upstream asks the city gateway, as a logger, for a day of one MN's hourly history: it
gets the hours stored, re-encrypted with its own key and marked `RF=1` (a 2025 target)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from adapters.hj212.cp import parse_cp
from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import parse_frame
from devkit import localstack
from gateway.archive.record import BEIJING
from gateway.registry import parse_key
from tests.conftest import wait_rows
from tests.frames import KEY_2025, MN_2025, qn_for, upload

from .kit import (
    UP_KEY,
    UP_PASSWORD,
    archived_frames,
    city_config,
    minute_upload,
    provincial_config,
    start_gateway,
    wait_until,
)

DAY = datetime(2026, 4, 1)  # Beijing


async def test_history_request_is_answered_from_the_archive_with_rf_1(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    up_db = "up_" + uuid.uuid4().hex[:10]
    port = localstack.free_port()
    province = await start_gateway(provincial_config(tmp_path / "prov", influx.url, up_db, port))
    target = {
        "name": "province",
        "address": f"127.0.0.1:{port}",
        "version": "2025",
        "sm4_key": UP_KEY,
        "password": UP_PASSWORD,
        "cns": ["2051"],  # the hours go up only when asked for
        "ack_timeout_s": 2,
        "backoff_min_s": 0.2,
    }
    city_path = tmp_path / "city"  # no rules: the data_gap rule would ask the device too
    city = await start_gateway(
        city_config(city_path, influx.url, database, [target], rules={"enabled": False})
    )
    try:
        dev = await DeviceClient.connect("127.0.0.1", city.hj212.port)
        for hour in range(24):
            hourly = upload(
                mn=MN_2025,
                cn="2061",
                qn=qn_for(100 + hour),
                data_time=DAY + timedelta(hours=hour),
                values={"a21026": float(hour)},
                flag=9,
                key=KEY_2025,
            )
            await dev.send(hourly)
            assert (await dev.read_frame()).cn == "9014"
        # the day after: not asked for
        late = upload(
            mn=MN_2025,
            cn="2061",
            qn=qn_for(200),
            data_time=DAY + timedelta(days=1, hours=1),
            values={"a21026": 99.0},
            flag=9,
            key=KEY_2025,
        )
        await dev.send(late)
        assert (await dev.read_frame()).cn == "9014"
        await dev.send(minute_upload(1, mn=MN_2025, key=KEY_2025))  # live: the MN speaks up there
        assert (await dev.read_frame()).cn == "9014"
        await dev.close()
        await wait_until(lambda: MN_2025 in province.hj212.by_mn, 20, "the MN upstream")
        begin = DAY.replace(tzinfo=BEIJING)
        end = begin + timedelta(hours=23, minutes=59, seconds=59)
        assert province.hj212.request_history(MN_2025, "2061", begin, end) is not None
        query = f"SELECT avg, backfill FROM emission WHERE mn = '{MN_2025}' AND interval = 'hour'"
        rows = await wait_rows(influx.url, up_db, query, 24, 30, needs=("avg", "backfill"))
        await asyncio.sleep(0.5)  # the 9012 after the last hour
    finally:
        await city.shutdown()
        await province.shutdown()
    assert sorted(r["avg"] for r in rows) == [float(h) for h in range(24)]
    assert all(r["backfill"] is True for r in rows)
    hours = [
        parse_frame(raw, lambda _mn: parse_key(UP_KEY))
        for raw in archived_frames(province.loaded.data_dir / "archive")
        if b"CN=2061" in raw
    ]
    assert len(hours) == 24
    assert all(f.rf == "1" and f.encrypted and f.pw == UP_PASSWORD for f in hours)
    assert all(f.version == 2 for f in hours)
    times = sorted(parse_cp(f.cp).params["DataTime"] for f in hours)
    assert times == [f"{DAY + timedelta(hours=h):%Y%m%d%H%M%S}" for h in range(24)]
    archived = archived_frames(province.loaded.data_dir / "archive")
    answers = {parse_frame(raw).cn for raw in archived if b"CN=901" in raw}
    assert answers == {"9011", "9012"}  # the request taken, then done
