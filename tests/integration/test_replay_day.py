"""One scripted day for two enterprises, fed through the real adapters (HJ 212 over TCP, power
and gate records over MQTT) with historical timestamps: exactly the expected anomalies, and
replaying the day adds no events."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.config import load_config
from gateway.regime import AlertSpec, OrderSpec
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config
from tests.frames import qn_for, upload

DAY = datetime(2026, 3, 10)  # Beijing local time in the payloads
MN_A = "0100000000000000000000B1"
MN_B = "0100000000000000000000B2"
REGISTRY = f"""
[[enterprises]]
id = "STEEL"
region = "city-a"

  [[enterprises.outlets]]
  id = "DW1"
  mn = "{MN_A}"
  password = "pw-a"
  lines = ["L1"]
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50 }}

  [[enterprises.meters]]
  id = "P1"
  role = "production"
  line = "L1"
  on_threshold_kw = 50

  [[enterprises.meters]]
  id = "T1"
  role = "treatment"
  line = "F1"
  on_threshold_kw = 5

  [[enterprises.facilities]]
  id = "F1"
  meters = ["T1"]

  [[enterprises.lines]]
  id = "L1"
  treatment = [{{ facility = "F1" }}]

  [[enterprises.gates]]
  id = "G1"

[[enterprises]]
id = "CHEM"
region = "city-b"

  [[enterprises.outlets]]
  id = "DW2"
  mn = "{MN_B}"
  password = "pw-b"
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50 }}
"""


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")  # no offset: Beijing time


def power_script() -> list[tuple[str, dict[str, Any]]]:
    """Production P1 runs 08:00-09:00 with treatment T1 off until 08:40; P1 runs again
    12:00-12:40 under a shutdown order (from 10:00, grace to 12:00)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for minute in range(0, 61, 5):
        out.append(("P1", {"time": iso(at(8, minute)), "p_kw": 300.0}))
        out.append(("T1", {"time": iso(at(8, minute)), "p_kw": 40.0 if minute >= 40 else 0.5}))
    out.append(("P1", {"time": iso(at(9, 30)), "p_kw": 2.0}))
    for minute in range(0, 41, 5):
        out.append(("P1", {"time": iso(at(12, minute)), "p_kw": 280.0}))
        out.append(("T1", {"time": iso(at(12, minute)), "p_kw": 40.0}))
    out.append(("P1", {"time": iso(at(12, 50)), "p_kw": 1.0}))
    return out


GATE = [
    {
        "time": iso(at(14, 30)),
        "direction": "in",
        "plate": "冀A11111",
        "emission_stage": "国四",
        "fuel": "柴油",
        "vehicle_class": "重型货车",
    },
    {
        "time": iso(at(14, 40)),
        "direction": "in",
        "plate": "冀A22222",
        "emission_stage": "国五",
        "fuel": "柴油",
        "vehicle_class": "重型货车",
    },
]


async def play_day(gw: Gateway, mqtt_port: int, prefix: str) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    for hour in range(6):  # hourly COD: 03:00 over the limit at STEEL, 04:00-05:00 at CHEM
        for mn, pw, value in (
            (MN_A, "pw-a", 60.0 if hour == 3 else 30.0),
            (MN_B, "pw-b", 70.0 if hour in (4, 5) else 20.0),
        ):
            await dev.send(
                upload(mn=mn, pw=pw, qn=qn_for(hour), data_time=at(hour), values={"w01018": value})
            )
            assert (await dev.read_frame()).cn == "9014"
    await dev.close()
    async with aiomqtt.Client("127.0.0.1", mqtt_port) as client:
        for meter, payload in power_script():
            await client.publish(f"{prefix}/power/STEEL/{meter}", json.dumps(payload), qos=1)
        await client.publish(f"{prefix}/gate/STEEL/G1", json.dumps(GATE), qos=1)


async def settle(gw: Gateway) -> int:
    """Wait until the anomaly stream stops changing; its last sequence number."""
    assert gw.anomalies is not None
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 1.5:
        seq = gw.anomalies.last_seq()
        if seq != last:
            last, stable_since = seq, time.monotonic()
        await asyncio.sleep(0.1)
    return last


def utc(hour: int, minute: int = 0) -> str:
    return (at(hour, minute) - timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:00+00:00")


async def test_scripted_day_gives_exactly_the_expected_anomalies_and_replays_cleanly(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    prefix = "day" + str(int(time.time() * 1000) % 10**8)
    config = write_config(
        tmp_path / "gw",
        influx.url,
        database,
        registry=REGISTRY,
        mqtt={
            "enabled": True,
            "port": mosquitto.port,
            "topic_prefix": prefix,
            "client_id": f"gw-{prefix}",
        },
    )
    gw = Gateway(load_config(config))
    await gw.start()
    try:
        assert gw.mqtt is not None and gw.regime is not None and gw.anomalies is not None
        await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
        gw.regime.add_order(
            OrderSpec.model_validate(
                {
                    "kind": "shutdown",
                    "enterprise": "STEEL",
                    "lines": ["L1"],
                    "starts_at": "2026-03-10T10:00:00+08:00",
                    "ends_at": "2026-03-11T00:00:00+08:00",
                }
            )
        )
        gw.regime.add_alert(
            AlertSpec.model_validate(
                {
                    "level": "orange",
                    "regions": ["city-a"],
                    "starts_at": "2026-03-10T14:00:00+08:00",
                    "ends_at": "2026-03-10T16:00:00+08:00",
                }
            )
        )
        await play_day(gw, mosquitto.port, prefix)
        first_seq = await settle(gw)
        items, _ = gw.anomalies.query(limit=1000)
        got = sorted(
            (
                a.type,
                a.enterprise,
                a.subject,
                a.state,
                a.started_at.isoformat(),
                a.ended_at.isoformat() if a.ended_at else None,
            )
            for a in items
            if a.type != "device_offline"
        )
        assert got == sorted(
            [
                ("over_limit", "STEEL", "outlet:STEEL/DW1/w01018", "closed", utc(3), utc(4)),
                ("over_limit", "CHEM", "outlet:CHEM/DW2/w01018", "open", utc(4), None),
                ("treatment_not_running", "STEEL", "line:STEEL/L1", "closed", utc(8), utc(8, 40)),
                (
                    "production_during_shutdown",
                    "STEEL",
                    "line:STEEL/L1",
                    "closed",
                    utc(12),
                    utc(12, 50),
                ),
                (
                    "banned_vehicle_entry",
                    "STEEL",
                    "gate:STEEL/G1/冀A11111",
                    "closed",
                    items[
                        [a.type for a in items].index("banned_vehicle_entry")
                    ].started_at.isoformat(),
                    items[
                        [a.type for a in items].index("banned_vehicle_entry")
                    ].started_at.isoformat(),
                ),
            ]
        )
        rows = influx_rows(
            influx.url, database, "SELECT plate, allowed FROM vehicle_passage GROUP BY *"
        )
        assert sorted((r["plate"], r["allowed"]) for r in rows) == [
            ("冀A11111", False),
            ("冀A22222", True),
        ]
        banned = next(a for a in items if a.type == "banned_vehicle_entry")
        assert banned.started_at.isoformat().startswith("2026-03-10T06:30:00")
        assert banned.evidence["level"] == "orange" and banned.evidence["stage_raw"] == "国四"
        # the same day again: nothing new in the stream
        await play_day(gw, mosquitto.port, prefix)
        assert await settle(gw) == first_seq
    finally:
        await gw.shutdown()
