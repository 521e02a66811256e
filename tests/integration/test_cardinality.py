"""A device that invents factor codes cannot fill InfluxDB's tag space: real sockets, real
InfluxDB. Its values are kept (emission_unrecognised), its series are bounded, and a good
device beside it keeps every ack and every value, under a code new to InfluxDB too."""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, wait_rows
from tests.frames import KEY_2025 as KEY
from tests.frames import MN_2025, MN_WATER, qn_for, upload


async def answer(device: DeviceClient) -> str:
    """The CN of the next reply to the device's own upload: a history request the data_gap
    rule may send meanwhile (2061: the hours run far behind the wall clock) is not one."""
    while True:
        frame = await device.read_frame()
        if frame.cn not in ("2031", "2041", "2051", "2061"):
            return frame.cn


async def test_invented_codes_are_kept_out_of_the_tag_space(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    hostile = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    good = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    acks = 0
    first = datetime(2026, 3, 1, 0)
    for i in range(100):  # 100 hours x 40 invented codes of the standard's shape, and others
        codes = {f"a8{i:02d}{k:02d}": float(k) for k in range(30)}  # no a8xxxx in the table
        codes |= {f"zz{i}x{k}": 1.0 for k in range(10)}
        hour = first + timedelta(hours=i)
        frame = upload(mn=MN_2025, st="31", qn=qn_for(i), data_time=hour, values=codes, key=KEY)
        await hostile.send(frame)  # encrypted: MN_2025 has a key
        assert await answer(hostile) == "9014"
        values = {"w01018": 40.0 + i % 5, "w21011": 0.3}  # w21011: a code InfluxDB has not seen
        await good.send(upload(qn=qn_for(1000 + i), data_time=hour, values=values))
        acks += await answer(good) == "9014"
    assert acks == 100
    rows = await wait_rows(
        influx.url,
        database,
        f"SELECT avg FROM emission WHERE mn = '{MN_WATER}' AND pollutant = 'w21011'",
        100,
    )
    assert len(rows) == 100
    held = await wait_rows(
        influx.url, database, f"SELECT * FROM emission_unrecognised WHERE mn = '{MN_2025}'", 100
    )
    assert len(held) == 100
    counts = [int(r["count"]) for r in held]
    assert sum(counts) == 100 * 40 - 32  # every invented value is kept; 32 became series
    tags = influx_rows(
        influx.url,
        database,
        f"SHOW TAG VALUES FROM emission WITH KEY = pollutant WHERE mn = '{MN_2025}'",
    )
    assert len(tags) == 32  # the device's bound of codes outside the vocabulary
    await hostile.close()
    await good.close()
