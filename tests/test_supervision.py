"""Supervision with real parts (InfluxDB, Mosquitto, TCP devices): a background task that dies
stops the gateway with an error (and the process with a non-zero status); a failing anomaly
publisher is isolated and counted; a registry reload reaches every user at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.anomalies.model import AnomalyEvent
from gateway.config import LoadedConfig
from gateway.rules.engine import RuleEngine
from gateway.status.completeness import DeviceStatusPoints
from gateway.supervisor import Gateway, GatewayFailed, run
from tests.conftest import REGISTRY, wait_rows
from tests.frames import qn_for, upload


def missing_ca(tmp_path: Path, port: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "port": port,
        "tls": True,
        "ca_file": str(tmp_path / "no-such-ca.pem"),
        "client_id": f"gw-ca-{time.monotonic_ns()}",
    }


async def test_mqtt_with_a_missing_ca_file_stops_the_gateway(
    gateway_config: Callable[..., LoadedConfig],
    mosquitto: localstack.ManagedProcess,
    tmp_path: Path,
) -> None:
    loaded = gateway_config(mqtt=missing_ca(tmp_path, mosquitto.port))
    started = time.monotonic()
    with pytest.raises(GatewayFailed, match="mqtt-adapter") as info:
        await asyncio.wait_for(run(loaded), 10)
    assert time.monotonic() - started < 5
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_the_process_exits_non_zero(
    gateway_config: Callable[..., LoadedConfig],
    mosquitto: localstack.ManagedProcess,
    tmp_path: Path,
) -> None:
    loaded = gateway_config(mqtt=missing_ca(tmp_path, mosquitto.port))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(loaded.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "mqtt-adapter" in result.stdout + result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("task", "target"),
    [("device-status", (DeviceStatusPoints, "points")), ("rule-ticker", (RuleEngine, "tick"))],
)
async def test_a_dying_background_task_stops_the_gateway(
    gateway_config: Callable[..., LoadedConfig],
    monkeypatch: pytest.MonkeyPatch,
    task: str,
    target: tuple[type, str],
) -> None:
    def broken(*_args: object) -> Any:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(*target, broken)
    loaded = gateway_config(rules={"status_interval_s": 0.2, "tick_s": 0.2})
    with pytest.raises(GatewayFailed, match=task):
        await asyncio.wait_for(run(loaded), 10)


async def test_a_failing_publisher_does_not_stop_the_influx_publisher(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    calls: list[AnomalyEvent] = []

    def boom(event: AnomalyEvent) -> None:
        calls.append(event)
        raise RuntimeError("this publisher is broken")

    gateway.publishers.publishers.insert(0, ("boom", boom))  # called before InfluxDB's
    before = METRICS.get_sample_value("errors_total", {"stage": "anomaly_boom"}) or 0.0
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    for i, value in enumerate([60.0, 30.0]):  # COD limit 50 mg/L: one hour over
        data_time = datetime(2026, 5, 2, 8 + i)
        await dev.send(upload(qn=qn_for(700 + i), data_time=data_time, values={"w01018": value}))
        assert (await dev.read_frame()).cn == "9014"
    await dev.close()
    rows = await wait_rows(
        influx.url,
        database,
        "SELECT * FROM anomaly WHERE \"type\" = 'over_limit'",
        1,
        needs=("state", "id"),
    )
    assert len(rows) == 1 and rows[0]["state"] == "closed"
    assert calls and all(e.anomaly.id == rows[0]["id"] for e in calls)
    after = METRICS.get_sample_value("errors_total", {"stage": "anomaly_boom"}) or 0.0
    assert after - before == len(calls)
    assert gateway.anomalies is not None
    assert gateway.anomalies.query(type_="over_limit")[1] == 1


async def test_every_user_sees_the_reloaded_registry(
    gateway_config: Callable[..., LoadedConfig], mosquitto: localstack.ManagedProcess
) -> None:
    loaded = gateway_config(
        mqtt={"enabled": True, "port": mosquitto.port, "client_id": "gw-reload-users"}
    )
    gw = Gateway(loaded)
    await gw.start()
    try:
        old = gw.registry()
        (loaded.path.parent / "registry.toml").write_text(
            REGISTRY + '\n[[enterprises]]\nid = "NEWCO"\n'
        )
        assert gw.reload_registry() == []
        new = gw.registry()
        assert new is not old and new.enterprise("NEWCO") is not None
        assert gw.mqtt is not None
        users = [
            loaded.registry,
            gw.hj212.registry,
            gw.hj212.handler.registry,
            gw.power.registry,
            gw.mqtt.registry,
            gw.offline.registry(),
            gw.treatment.registry(),
        ]
        assert all(user is new for user in users)
    finally:
        await gw.shutdown()
