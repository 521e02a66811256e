"""An HJ 212-2025 operating-condition upload (ST=45) through a real gateway: acknowledged and
stored in InfluxDB as `operating_condition`, state marks as sent."""

from __future__ import annotations

from datetime import datetime

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.supervisor import Gateway
from tests.conftest import wait_rows
from tests.frames import MN_WATER, qn_for


async def test_an_operating_condition_upload_is_acked_and_stored(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    at = datetime(2026, 4, 9, 8, 0)
    cp = f"DataTime={at:%Y%m%d%H%M%S};p99101-Rtd=St,p99101-Flag=N;p99201-Rtd=835.2,p99201-Flag=N"
    fields: list[tuple[str, str | int]] = [
        ("QN", qn_for(45)),
        ("ST", "45"),
        ("CN", "2011"),
        ("PW", "123456"),
        ("MN", MN_WATER),
        ("Flag", 5),
    ]
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    await dev.send(build_frame(build_segment(fields, cp)))
    assert (await dev.read_frame()).cn == "9014"
    await dev.close()
    rows = await wait_rows(
        influx.url, database, "SELECT * FROM operating_condition", 2, needs=("flag",)
    )
    by_code = {r["code"]: r for r in rows}
    assert by_code["p99101"]["state"] == "St" and by_code["p99101"]["flag"] == "N"
    assert by_code["p99201"]["value"] == 835.2 and by_code["p99201"]["mn"] == MN_WATER
    assert by_code["p99201"]["enterprise"] == "E1" and by_code["p99201"]["outlet"] == "DW001"
