"""`data_gap` on the device's clock, through the running gateway: heartbeats carry the clock
(QN) but do not hide a missing hourly record; the answers to the gateway's own history
requests carry the gateway's QN and must not move the device's clock."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from adapters.hj212.builder import build_frame, build_segment, execution_answer, request_answer
from adapters.hj212.device import DeviceClient
from gateway.anomalies.model import Anomaly
from gateway.supervisor import Gateway
from tests.frames import MN_WATER, upload

DAY = datetime(2026, 3, 1)  # a replayed day: the wall clock is months ahead


def heartbeat(at: datetime) -> bytes:
    fields: list[tuple[str, str | int]] = [
        ("QN", f"{at:%Y%m%d%H%M%S}000"),
        ("ST", "32"),
        ("CN", "9015"),
        ("PW", "123456"),
        ("MN", MN_WATER),
        ("Flag", 5),
    ]
    return build_frame(build_segment(fields))


async def gaps(gw: Gateway, want: int, timeout_s: float = 8.0) -> list[Anomaly]:
    assert gw.anomalies is not None
    deadline = time.monotonic() + timeout_s
    items: list[Anomaly] = []
    while time.monotonic() < deadline:
        items, _ = gw.anomalies.query(type_="data_gap", limit=100)
        if len(items) >= want:
            break
        await asyncio.sleep(0.2)
    return items


async def test_heartbeats_do_not_hide_a_missing_hour(gateway: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    for hour in range(8, 11):  # 08:00, 09:00, 10:00 sent at the end of their hour
        sent = DAY + timedelta(hours=hour + 1, minutes=1)
        await dev.send(upload(qn=f"{sent:%Y%m%d%H%M%S}000", data_time=DAY + timedelta(hours=hour)))
        assert (await dev.read_frame()).cn == "9014"
    for minute in (15, 30, 45, 60, 75, 81):  # 11:00 is never sent; heartbeats go on
        await dev.send(heartbeat(DAY + timedelta(hours=11, minutes=minute)))
        assert (await dev.read_frame()).cn == "9013"
    # 12:21 on the device's clock: the 11:00 record is 21 min past due
    request = await dev.read_frame(timeout_s=5)
    assert (request.cn, request.mn) == ("2061", MN_WATER)
    (gap,) = await gaps(gateway, 1)
    assert gap.started_at.isoformat() == "2026-03-01T03:00:00+00:00"  # 11:00 Beijing
    assert gap.evidence["seen_by"] == "overdue" and gap.evidence["missing_hours"] == 1
    # the device answers the request: 9011 with the gateway's QN (the wall clock), the hour, 9012
    await dev.send(request_answer(request))
    await dev.send(upload(qn="20260301122200000", data_time=DAY + timedelta(hours=11)))
    assert (await dev.read_frame()).cn == "9014"
    await dev.send(execution_answer(request))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        (gap,) = await gaps(gateway, 1)
        if gap.state == "closed":
            break
        await asyncio.sleep(0.2)
    assert gap.state == "closed" and gap.evidence["closed_as"] == "backfilled"
    await asyncio.sleep(2.5)  # ticks: the request's QN must not have moved the device's clock
    assert [(g.state, g.started_at) for g in await gaps(gateway, 1)] == [("closed", gap.started_at)]
    await dev.close()
