"""MQTT durability: InfluxDB stopped while messages flow, the gateway killed with SIGKILL
mid-stream, the broker restarted. Every message must end up in InfluxDB exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from adapters.mqtt.adapter import reconnect_delay
from devkit import localstack
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config
from tests.integration.test_faults import start_gateway_process

BASE = datetime(2026, 5, 1, tzinfo=UTC)


def sample(i: int) -> str:
    return json.dumps({"time": (BASE + timedelta(minutes=i)).isoformat(), "p_kw": float(i)})


async def publish_many(
    port: int, topic: str, count: int, start: int = 0, pause_s: float = 0
) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for i in range(start, start + count):
            await client.publish(topic, sample(i), qos=1)
            if pause_s:
                await asyncio.sleep(pause_s)


async def stored_values(url: str, db: str) -> list[float]:
    try:
        rows = await asyncio.to_thread(influx_rows, url, db, "SELECT p_kw FROM power")
    except localstack.LocalStackError:
        return []
    return sorted(r["p_kw"] for r in rows)


async def wait_for_log(log: Path, text: str, timeout_s: float) -> None:
    """Until the gateway's log says `text` (its start-up time varies with the machine's load)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway did not log {text!r} within {timeout_s} s")


async def wait_values(url: str, db: str, count: int, timeout_s: float) -> list[float]:
    deadline = time.monotonic() + timeout_s
    values: list[float] = []
    while time.monotonic() < deadline:
        values = await stored_values(url, db)
        if len(values) >= count:
            return values
        await asyncio.sleep(0.2)
    return values


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[localstack.ManagedProcess]:
    proc = localstack.mosquitto(tmp_path / "own-mosquitto")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def mqtt_section(port: int, prefix: str) -> dict[str, object]:
    return {
        "enabled": True,
        "port": port,
        "topic_prefix": prefix,
        "client_id": f"gw-{prefix}",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }


async def test_influxdb_stopped_while_messages_flow(
    own_influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    gateway_config: Callable[..., LoadedConfig],
    database: str,
) -> None:
    gw = Gateway(gateway_config(influx_url=own_influx.url, mqtt=mqtt_section(mosquitto.port, "f1")))
    await gw.start()
    assert gw.mqtt is not None
    await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
    try:
        await publish_many(mosquitto.port, "f1/power/E1/M1", 100)
        await asyncio.to_thread(own_influx.stop)
        await publish_many(mosquitto.port, "f1/power/E1/M1", 200, start=100)
        await asyncio.sleep(1.0)
        assert gw.spool.depth_bytes > 0  # acknowledged from the spool while InfluxDB is down
        await asyncio.to_thread(own_influx.start)
        values = await wait_values(own_influx.url, database, 300, 30)
        assert values == [float(i) for i in range(300)]
    finally:
        await gw.shutdown()


async def test_gateway_sigkill_broker_redelivers_and_points_are_exactly_once(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    prefix = "f2" + os.urandom(3).hex()
    config = write_config(
        tmp_path / "gw",
        influx.url,
        database,
        hj212={"listen": f"127.0.0.1:{localstack.free_port()}"},
        influx={"flush_interval_s": 2.0, "batch_lines": 100000},
        mqtt=mqtt_section(mosquitto.port, prefix),
    )
    log = tmp_path / "gateway.log"
    proc = start_gateway_process(config, log)
    total = 2000
    try:
        await wait_for_log(log, "MQTT subscribed", 30)  # the persistent session exists
        publisher = asyncio.create_task(
            publish_many(mosquitto.port, f"{prefix}/power/E1/M1", total, pause_s=0.001)
        )
        await asyncio.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream, with data spooled but not yet written
        proc.wait(10)
        await publisher  # the rest waits in the broker for the persistent session
    finally:
        if proc.poll() is None:
            proc.kill()
    restarted = start_gateway_process(config, log)
    try:
        values = await wait_values(influx.url, database, total, 60)
        assert values == [float(i) for i in range(total)], log.read_text()[-3000:]
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0


async def test_broker_restart_adapter_reconnects_and_resumes(
    capfd: pytest.CaptureFixture[str],
    own_mosquitto: localstack.ManagedProcess,
    gateway_config: Callable[..., LoadedConfig],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    gw = Gateway(gateway_config(mqtt=mqtt_section(own_mosquitto.port, "f3")))
    await gw.start()
    assert gw.mqtt is not None
    try:
        await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
        await publish_many(own_mosquitto.port, "f3/power/E1/M1", 10)
        assert len(await wait_values(influx.url, database, 10, 15)) == 10
        await asyncio.to_thread(own_mosquitto.stop)
        await asyncio.sleep(1.0)
        assert not gw.mqtt.connected.is_set()
        await asyncio.to_thread(own_mosquitto.start)
        await asyncio.wait_for(gw.mqtt.connected.wait(), 15)
        assert gw.mqtt.connections >= 2
        await publish_many(own_mosquitto.port, "f3/power/E1/M1", 10, start=10)
        values = await wait_values(influx.url, database, 20, 15)
        assert values == [float(i) for i in range(20)]
        # a second outage after a good session: logged again, retried from the first delay
        await asyncio.to_thread(own_mosquitto.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_mosquitto.start)
        await asyncio.wait_for(gw.mqtt.connected.wait(), 15)
        assert gw.mqtt.connections >= 3
        logged = capfd.readouterr()
        lines = [
            ln for ln in (logged.out + logged.err).splitlines() if "MQTT connection lost" in ln
        ]
        assert len([ln for ln in lines if "attempt=1" in ln]) == 2, lines  # one per outage
    finally:
        await gw.shutdown()


def test_reconnect_delay_doubles_from_the_first_and_is_capped() -> None:
    for _ in range(50):
        assert 0.05 <= reconnect_delay(1, 0.1, 0.5) <= 0.1
        assert 0.1 <= reconnect_delay(2, 0.1, 0.5) <= 0.2
        assert 0.25 <= reconnect_delay(9, 0.1, 0.5) <= 0.5
