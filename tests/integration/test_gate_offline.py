"""A gate system that stops sending during an alert gets device_offline, through a real gateway
and a real broker; its next passage closes it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from devkit import localstack
from gateway.anomalies.model import Anomaly
from gateway.config import load_config
from gateway.regime import AlertSpec
from gateway.supervisor import Gateway
from tests.conftest import write_config

REGISTRY = """
[[enterprises]]
id = "COKE"
name = "焦化一厂"
region = "city-a"

  [[enterprises.gates]]
  id = "G1"
  name = "东门"
  offline_after_s = 2
  quiet_hours = []
"""


async def wait_for(gw: Gateway, state: str) -> Anomaly:
    assert gw.anomalies is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        items, _ = gw.anomalies.query(type_="device_offline")
        found = [a for a in items if a.subject == "gate:COKE/G1" and a.state == state]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {state} device_offline for the gate")


async def test_a_gate_silent_during_an_alert_goes_offline(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    prefix = "gate" + str(int(time.time() * 1000) % 10**8)
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
        assert gw.mqtt is not None and gw.regime is not None
        await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
        now = datetime.now(UTC)
        gw.regime.add_alert(
            AlertSpec.model_validate(
                {
                    "level": "orange",
                    "regions": ["city-a"],
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(hours=2)).isoformat(),
                }
            )
        )

        async def passage(plate: str) -> None:
            record = {"time": datetime.now(UTC).isoformat(), "direction": "in", "plate": plate}
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                await client.publish(f"{prefix}/gate/COKE/G1", json.dumps(record), qos=1)

        await passage("冀A12345")
        offline = await wait_for(gw, "open")
        assert offline.evidence["threshold_s"] == 2 and offline.evidence["never_seen"] is False
        assert offline.evidence["silence_s"] >= 2
        await passage("冀A54321")
        closed = await wait_for(gw, "closed")
        assert closed.id == offline.id
    finally:
        await gw.shutdown()
