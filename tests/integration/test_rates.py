"""A logger whose day falls under 90 % transmission gets its low_transmission anomaly, through a
real gateway: frames over TCP, the rule engine's ticks, the anomaly store."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from adapters.hj212.device import DeviceClient
from gateway.anomalies.model import Anomaly
from gateway.supervisor import Gateway
from tests.frames import MN_WATER, qn_for, upload


async def test_a_day_with_4_hours_missing_gets_low_transmission(gateway: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    hours = [datetime(2026, 4, 5, h) for h in range(20)]  # 20:00-23:00 never sent
    hours.append(datetime(2026, 4, 6, 2))  # the next day's 02:00: the device is past 04-05
    for i, at in enumerate(hours):
        await dev.send(upload(qn=qn_for(i), data_time=at, values={"w01018": 20.0 + i % 3}))
        assert (await dev.read_frame()).cn == "9014"
    assert gateway.anomalies is not None
    deadline = time.monotonic() + 10
    items: list[Anomaly] = []
    while time.monotonic() < deadline and not items:
        items, _ = gateway.anomalies.query(type_="low_transmission")
        await asyncio.sleep(0.05)
    assert len(items) == 1
    anomaly = items[0]
    assert (anomaly.subject, anomaly.severity, anomaly.state) == (
        f"mn:{MN_WATER}/rates:day",
        "alarm",
        "closed",
    )
    ev = anomaly.evidence
    assert (ev["expected_hours"], ev["received_hours"], ev["valid_hours"]) == (24, 20, 20)
    assert ev["transmission_rate"] == 0.8333 and ev["period_label"] == "2026-04-05"
    assert anomaly.started_at.isoformat() == "2026-04-05T00:00:00+08:00"
    assert len(ev["missing_hours_at"]) == 4
    await dev.close()
