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


async def test_device_logs_are_acked_and_stored_whatever_their_age(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    """A 2081 power-on time and a 3020 instrument parameter dated years back."""
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    for i, (cn, cp) in enumerate(
        (
            ("2081", "DataTime=20260409080000;RestartTime=20260409075500"),
            ("3020", "DataTime=20200301145000;PolId=w01018;i13004-Info=165.5"),
        )
    ):
        fields: list[tuple[str, str | int]] = [
            ("QN", qn_for(60 + i)),
            ("ST", "32"),
            ("CN", cn),
            ("PW", "123456"),
            ("MN", MN_WATER),
            ("Flag", 5),
        ]
        await dev.send(build_frame(build_segment(fields, cp)))
        assert (await dev.read_frame()).cn == "9014"
    await dev.close()
    rows = await wait_rows(influx.url, database, "SELECT * FROM device_log", 2, needs=("text",))
    by_cn = {r["cn"]: r for r in rows}
    assert by_cn["2081"]["restart_at"] == "2026-04-08T23:55:00+00:00"
    assert by_cn["3020"]["value"] == 165.5 and by_cn["3020"]["pol_id"] == "w01018"
    assert by_cn["3020"]["code"] == "i13004" and by_cn["3020"]["time"].startswith("2020-03-01")
