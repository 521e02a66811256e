"""The rules judge what a record says as a whole: a split upload once all its parts are in
(or with what came, once its window ran out), and a 2005 logger through its own codes.
Real sockets, real spool, real InfluxDB, the gateway in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.anomalies.model import Anomaly
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.conftest import write_config

MN_SPLIT = "SPLIT0000000000000000001"
MN_2005 = "OLD00000000000000000001"
MN_NEIGHBOUR = "NEXT0000000000000000001"

REGISTRY = f"""
[[enterprises]]
id = "E1"
region = "city"
  [[enterprises.outlets]]
  id = "DA9"
  mn = "{MN_SPLIT}"
  password = "123456"
  version = "2017"
  [enterprises.outlets.pollutants]
  a21026 = {{ limit = 35, ref_o2 = 9.0 }}
  [[enterprises.outlets]]
  id = "DB9"
  mn = "{MN_2005}"
  password = "123456"
  version = "2005"
  [enterprises.outlets.pollutants]
  02 = {{ limit = 35, ref_o2 = 9.0 }}
  a21002 = {{ limit = 50, ref_o2 = 9.0 }}

[[enterprises]]
id = "E2"
region = "city"
  [[enterprises.outlets]]
  id = "DA1"
  mn = "{MN_NEIGHBOUR}"
  password = "123456"
  [enterprises.outlets.pollutants]
  a21026 = {{ limit = 35, ref_o2 = 9.0 }}
"""


def frame(
    mn: str, hour: datetime, groups: dict[str, float], *, flag: int, part: tuple[int, int] | None
) -> bytes:
    """A 2061 upload (or one packet of it) with `-Avg` and flag N for each code."""
    fields: list[tuple[str, str | int]] = [
        ("QN", f"{hour:%Y%m%d%H%M%S}{part[1] if part else 0:03d}"),
        ("ST", "31"),
        ("CN", "2061"),
        ("PW", "123456"),
        ("MN", mn),
        ("Flag", flag),
    ]
    if part is not None:
        fields += [("PNUM", part[0]), ("PNO", part[1])]
    cp = ";".join(
        [f"DataTime={hour:%Y%m%d%H%M%S}", *(f"{c}-Avg={v},{c}-Flag=N" for c, v in groups.items())]
    )
    return build_frame(build_segment(fields, cp))


async def send(dev: DeviceClient, raw: bytes) -> None:
    await dev.send(raw)
    assert (await dev.read_frame()).cn == "9014"


async def settled(gw: Gateway, want: int, timeout_s: float = 10.0) -> list[Anomaly]:
    """The over_limit anomalies once `want` of them exist and nothing changed for 0.5 s."""
    assert gw.anomalies is not None
    deadline = time.monotonic() + timeout_s
    last: list[Anomaly] = []
    while time.monotonic() < deadline:
        items, _ = gw.anomalies.query(type_="over_limit", limit=100)
        if len(items) >= want and items == last:
            return items
        last = items
        await asyncio.sleep(0.5)
    return last


@pytest.fixture
async def gw(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> AsyncIterator[Gateway]:
    hj212 = {
        "listen": "127.0.0.1:0",
        "idle_timeout_s": 60,
        "split_window_s": 1.0,
        "partial_frame_timeout_s": 1.0,  # the sweep, which expires uploads, every 0.5 s
    }
    path = write_config(tmp_path / "gw", influx.url, database, REGISTRY, hj212=hj212)
    gateway = Gateway(load_config(path))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.shutdown()


async def test_a_split_hour_is_judged_whole_with_the_o2_of_its_last_packet(gw: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    neighbour = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    for h in range(8, 10):  # another plant's ordinary hours around it
        await send(
            neighbour,
            frame(
                MN_NEIGHBOUR,
                datetime(2026, 3, 1, h),
                {"a21026": 12.0, "a19001": 10.0},
                flag=5,
                part=None,
            ),
        )
    # 08:00: SO2 30 measured, but O2 15 % (in packet 2) makes it 30 x 12 / 6 = 60 at 9 % O2
    await send(dev, frame(MN_SPLIT, datetime(2026, 3, 1, 8), {"a21026": 30.0}, flag=7, part=(2, 1)))
    await send(dev, frame(MN_SPLIT, datetime(2026, 3, 1, 8), {"a19001": 15.0}, flag=7, part=(2, 2)))
    # 09:00 must not: SO2 40 measured is over 35, but at O2 3 % it is 40 x 12 / 18 = 26.7
    await send(dev, frame(MN_SPLIT, datetime(2026, 3, 1, 9), {"a21026": 40.0}, flag=7, part=(2, 1)))
    await send(dev, frame(MN_SPLIT, datetime(2026, 3, 1, 9), {"a19001": 3.0}, flag=7, part=(2, 2)))
    found = await settled(gw, 1)
    assert [(a.subject, a.state) for a in found] == [("outlet:E1/DA9/a21026", "closed")]
    (anomaly,) = found
    assert anomaly.started_at.isoformat() == "2026-03-01T00:00:00+00:00"  # 08:00 Beijing
    assert anomaly.ended_at is not None
    assert anomaly.ended_at.isoformat() == "2026-03-01T01:00:00+00:00"
    (hour,) = anomaly.evidence["hours"]
    assert (hour["value"], hour["o2"], hour["avg"]) == (60.0, 15.0, 30.0)
    assert "upload_parts" not in hour
    assert gw.hj212.reassembler.expired == 0
    await dev.close()
    await neighbour.close()


async def test_a_split_hour_whose_window_ran_out_is_judged_with_what_came(gw: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    await send(
        dev, frame(MN_SPLIT, datetime(2026, 3, 1, 10), {"a21026": 50.0}, flag=7, part=(2, 1))
    )
    found = await settled(gw, 1)
    assert len(found) == 1
    (hour,) = found[0].evidence["hours"]
    assert hour["upload_parts"] == "1/2"
    assert hour["o2"] is None and hour["basis"].startswith("measured mean (no usable O2")
    assert found[0].started_at.isoformat() == "2026-03-01T02:00:00+00:00"
    await dev.close()


async def test_a_2005_logger_is_judged_through_its_own_codes(gw: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    # 2005 codes: 02 SO2, 03 NOx, S01 O2, B02 flue-gas flow. O2 15 %: SO2 30 -> 60 over 35;
    # NOx 20 -> 40, under its limit of 50 (written under the 2017 code in the registry)
    groups = {"02": 30.0, "03": 20.0, "S01": 15.0, "B02": 40.0}
    await send(dev, frame(MN_2005, datetime(2026, 3, 1, 8), groups, flag=1, part=None))
    found = await settled(gw, 1)
    assert [(a.subject, a.evidence["code_sent"]) for a in found] == [("outlet:E1/DB9/a21026", "02")]
    (hour,) = found[0].evidence["hours"]
    assert (hour["value"], hour["o2"]) == (60.0, 15.0)
    await dev.close()
