"""Refused frames open their anomaly at the frame's own time (its DataTime), through a real
gateway: a wrong password's auth_failure and an unknown MN's unregistered_device."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from adapters.hj212.device import DeviceClient
from gateway.anomalies.model import Anomaly
from gateway.supervisor import Gateway
from tests.frames import MN_WATER, upload


async def wait_for(gw: Gateway, type_: str) -> Anomaly:
    assert gw.anomalies is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items, _ = gw.anomalies.query(type_=type_)
        if items:
            return items[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {type_}")


async def test_refused_frames_open_their_anomaly_at_their_own_time(gateway: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    await dev.send(upload(pw="wrong!", data_time=datetime(2026, 4, 10, 8, 0)))
    await dev.send(
        upload(mn="99999999999999", qn="20260410093000000", data_time=datetime(2026, 4, 10, 9))
    )
    auth = await wait_for(gateway, "auth_failure")
    assert auth.subject == f"mn:{MN_WATER}"
    assert auth.started_at.isoformat() == "2026-04-10T00:00:00+00:00"  # 08:00 Beijing time
    unknown = await wait_for(gateway, "unregistered_device")
    assert unknown.started_at.isoformat() == "2026-04-10T01:00:00+00:00"  # its DataTime
    await dev.close()
