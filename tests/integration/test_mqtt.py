"""The MQTT adapter against a real Mosquitto and a real InfluxDB."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest

from devkit import localstack
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.conftest import wait_rows
from tests.frames import MN_WATER, qn_for, upload


@pytest.fixture
def prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]  # a topic tree of this test alone


@pytest.fixture
async def mqtt_gateway(
    gateway_config: Callable[..., LoadedConfig], mosquitto: localstack.ManagedProcess, prefix: str
) -> AsyncIterator[Gateway]:
    gw = Gateway(
        gateway_config(
            mqtt={
                "enabled": True,
                "port": mosquitto.port,
                "topic_prefix": prefix,
                "client_id": f"gw-{prefix}",
                "reconnect_max_s": 1.0,
            }
        )
    )
    await gw.start()
    assert gw.mqtt is not None
    await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
    try:
        yield gw
    finally:
        await gw.shutdown()


async def publish(port: int, topic: str, payload: bytes | str) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1)


async def test_power_payload_shapes_land_as_power_points(
    mqtt_gateway: Gateway,
    mosquitto: localstack.ManagedProcess,
    influx: localstack.ManagedProcess,
    database: str,
    prefix: str,
) -> None:
    topic = f"{prefix}/power/E1/M1"
    await publish(
        mosquitto.port,
        topic,
        json.dumps(
            {"time": "2026-03-01T08:00:00", "p_kw": 120.5, "kwh": 1000.0, "ua": 220.1, "pf": 0.93}
        ),
    )
    await publish(
        mosquitto.port,
        topic,
        json.dumps(
            [
                {"time": "2026-03-01T08:15:00+08:00", "kwh": 1030.0, "switch": 1},
                {"time": 1772325000000, "p_kw": "0.2", "kwh": 1030.5},  # 2026-03-01T00:30:00Z
            ]
        ),
    )
    rows = await wait_rows(influx.url, database, "SELECT * FROM power", 3)
    assert [r["time"] for r in rows] == [
        "2026-03-01T00:00:00Z",
        "2026-03-01T00:15:00Z",
        "2026-03-01T00:30:00Z",
    ]
    first, second, third = rows
    assert (first["enterprise"], first["meter"], first["role"]) == ("E1", "M1", "unregistered")
    assert (first["p_kw"], first["kwh"], first["ua"], first["pf"], first["running"]) == (
        120.5,
        1000.0,
        220.1,
        0.93,
        True,
    )
    assert first["energy_kwh"] is None  # the meter's first reading: no interval yet
    assert (second["kwh"], second["energy_kwh"], second["switch"]) == (1030.0, 30.0, 1)
    assert second["running"] is True  # 30 kWh in 15 min = 120 kW mean
    assert (third["p_kw"], third["energy_kwh"], third["running"]) == (0.2, 0.5, False)


async def test_gate_record_is_normalised_and_raw_stage_kept(
    mqtt_gateway: Gateway,
    mosquitto: localstack.ManagedProcess,
    influx: localstack.ManagedProcess,
    database: str,
    prefix: str,
) -> None:
    record = {
        "time": "2026-03-01 09:30:00",
        "direction": "进",
        "plate": "冀A·12345",
        "emission_stage": "国四",
        "fuel": "柴油",
        "vehicle_class": "重型货车",
        "vin": "LZZ1CLVB0FN123456",
        "tonnage": 31.5,
    }
    same_time = dict(record, plate="冀B67890", emission_stage="国VI")
    await publish(mosquitto.port, f"{prefix}/gate/E1/G1", json.dumps([record, same_time]))
    rows = await wait_rows(influx.url, database, "SELECT * FROM vehicle_passage GROUP BY *", 2)
    assert len(rows) == 2  # same instant, same gate: both vehicles kept
    by_plate = {r["plate"]: r for r in rows}
    truck = by_plate["冀A12345"]
    assert (truck["emission_stage"], truck["stage_raw"], truck["fuel"], truck["vehicle_class"]) == (
        "4",
        "国四",
        "diesel",
        "heavy",
    )
    assert (truck["direction"], truck["vin"], truck["tonnage"]) == ("in", "LZZ1CLVB0FN123456", 31.5)
    assert by_plate["冀B67890"]["emission_stage"] == "6"
    assert all(r["time"].startswith("2026-03-01T01:30:00") for r in rows)


async def test_invalid_payloads_go_to_dead_letter_and_do_not_block(
    mqtt_gateway: Gateway,
    mosquitto: localstack.ManagedProcess,
    influx: localstack.ManagedProcess,
    database: str,
    prefix: str,
) -> None:
    bad = [
        (f"{prefix}/power/E1/M9", b"{not json"),
        (f"{prefix}/power/E1/M9", json.dumps({"time": "2026-03-01T08:00:00", "kwh": -5})),
        (
            f"{prefix}/gate/E1/G1",
            json.dumps({"time": "2026-03-01T08:00:00", "direction": "in", "plate": "X" * 40}),
        ),
        (f"{prefix}/power/E1/M9", json.dumps({"p_kw": 1.0})),
    ]
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as watcher:
        await watcher.subscribe(f"{prefix}/deadletter/#", qos=1)
        for topic, payload in bad:
            await publish(mosquitto.port, topic, payload)
        await publish(
            mosquitto.port,
            f"{prefix}/power/E1/M9",
            json.dumps({"time": "2026-03-01T08:00:00", "p_kw": 3.0}),
        )
        letters = []
        async with asyncio.timeout(10):
            async for message in watcher.messages:
                letters.append((message.topic.value, json.loads(message.payload)))  # type: ignore[arg-type]
                if len(letters) == len(bad):
                    break
    assert [t for t, _ in letters] == [f"{prefix}/deadletter/{t}" for t, _ in bad]
    assert [d["reason"] for _, d in letters] == ["json", "value", "value", "schema"]
    assert all(d["error"] and d["payload"] for _, d in letters)
    rows = await wait_rows(influx.url, database, "SELECT p_kw FROM power", 1)
    assert [r["p_kw"] for r in rows] == [3.0]  # the good message after the poison ones landed


async def test_hj212_over_mqtt_with_reply(
    mqtt_gateway: Gateway,
    mosquitto: localstack.ManagedProcess,
    influx: localstack.ManagedProcess,
    database: str,
    prefix: str,
) -> None:
    topic = f"{prefix}/hj212/{MN_WATER}"
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
        await device.subscribe(f"{topic}/reply", qos=1)
        await device.publish(topic, upload(qn=qn_for(7)), qos=1)
        async with asyncio.timeout(10):
            async for message in device.messages:
                reply = bytes(message.payload)  # type: ignore[arg-type]
                break
    assert b"CN=9014" in reply and f"QN={qn_for(7)}".encode() in reply and b"ST=91" in reply
    rows = await wait_rows(influx.url, database, "SELECT * FROM emission", 2)
    assert sorted(r["pollutant"] for r in rows) == ["w01018", "w21003"]


async def test_anomalies_are_published_on_mqtt(
    mqtt_gateway: Gateway, mosquitto: localstack.ManagedProcess, prefix: str
) -> None:
    from datetime import datetime

    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as watcher:
        await watcher.subscribe(f"{prefix}/anomalies/#", qos=1)
        frame = upload(qn=qn_for(8), data_time=datetime(2026, 4, 3, 8), values={"w01018": 99.0})
        await publish(mosquitto.port, f"{prefix}/hj212/{MN_WATER}", frame)
        async with asyncio.timeout(10):
            async for message in watcher.messages:
                body = json.loads(message.payload)  # type: ignore[arg-type]
                topic = message.topic.value
                break
    assert topic == f"{prefix}/anomalies/E1/over_limit"
    assert body["event"] == "opened"
    assert body["anomaly"]["subject"] == "outlet:E1/DW001/w01018"
    assert body["anomaly"]["evidence"]["hours"][0]["value"] == 99.0
    assert "超标" in body["anomaly"]["summary"]  # officers read Chinese
    assert "over its limit" in body["anomaly"]["summary_en"]


async def test_shared_subscription_group_mqtt5(
    gateway_config: Callable[..., LoadedConfig],
    mosquitto: localstack.ManagedProcess,
    influx: localstack.ManagedProcess,
    database: str,
    prefix: str,
) -> None:
    gw = Gateway(
        gateway_config(
            mqtt={
                "enabled": True,
                "port": mosquitto.port,
                "topic_prefix": prefix,
                "client_id": f"gw5-{prefix}",
                "shared_group": "gateways",
            }
        )
    )
    await gw.start()
    try:
        assert gw.mqtt is not None
        await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
        for minute in range(3):
            await publish(
                mosquitto.port,
                f"{prefix}/power/E1/M5",
                json.dumps({"time": f"2026-03-02T08:0{minute}:00", "p_kw": float(minute)}),
            )
        rows = await wait_rows(influx.url, database, "SELECT p_kw FROM power", 3)
        assert sorted(r["p_kw"] for r in rows) == [0.0, 1.0, 2.0]
    finally:
        await gw.shutdown()
