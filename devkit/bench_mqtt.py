"""The MQTT part of ``pollution-gateway bench``: messages/s from a local Mosquitto into
InfluxDB through the gateway, against what a plain paho consumer reads from the same broker.

Both runs drain the same kind of backlog: N QoS 1 power messages queued in the broker for a
persistent session while its client is away, then the client connects and is timed until it
has them all (the gateway: until all N points are counted back from InfluxDB).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devkit import localstack
from devkit.bench_anomaly import anomaly_runs
from devkit.benchkit import count_measurement, write_config
from devkit.process import start_gateway, stop, wait_port

BASE = datetime(2025, 6, 1, tzinfo=UTC)


def _message(i: int) -> bytes:
    moment = BASE + timedelta(seconds=i)
    return json.dumps(
        {"time": moment.isoformat(), "p_kw": float(i % 500), "kwh": float(i)}
    ).encode()


def _publish(port: int, topic: str, count: int) -> None:
    """Publish `count` QoS 1 messages and wait until the broker has acknowledged them all."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, _message(i), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def _paho_session(port: int, client_id: str, topic: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    return client


def _plain_consumer_rate(port: int, count: int) -> float:
    """Messages/s a plain paho consumer (auto-acknowledging) drains from a backlog."""
    topic = "bench/plain/E/M"
    setup = _paho_session(port, "bench-plain", topic)
    setup.loop(1.0)
    setup.disconnect()
    _publish(port, topic, count)
    received = 0
    done = threading.Event()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    consumer = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-plain", clean_session=False
    )
    consumer.on_message = on_message
    started = time.perf_counter()
    consumer.connect("127.0.0.1", port)
    consumer.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - started
    consumer.loop_stop()
    consumer.disconnect()
    return received / elapsed


async def mqtt_runs(work: Path, influx_url: str, count: int) -> dict[str, float]:
    broker = localstack.mosquitto(work / "mosquitto")
    broker.start()
    results: dict[str, float] = {}
    try:
        results["mqtt_plain_paho_msgs_per_s"] = await asyncio.to_thread(
            _plain_consumer_rate, broker.port, count
        )
        shutil.rmtree(work / "gw", ignore_errors=True)
        port, mport = localstack.free_port(), localstack.free_port()
        config = write_config(work, port, influx_url, 1, mport, mqtt_port=broker.port)
        log = work / "gateway-mqtt.log"
        gateway = start_gateway(config, log)  # creates the persistent session
        await wait_port(port)
        await asyncio.sleep(2.0)
        stop(gateway)
        await asyncio.to_thread(_publish, broker.port, "bench/power/BENCH/M1", count)
        before = count_measurement(influx_url, "power", "p_kw")
        gateway = start_gateway(config, log)
        await wait_port(port)  # up: the MQTT session starts now, not before
        started = time.perf_counter()
        stored = before
        while stored - before < count and time.perf_counter() - started < 600:
            await asyncio.sleep(0.2)
            stored = count_measurement(influx_url, "power", "p_kw")
        elapsed = time.perf_counter() - started
        stop(gateway)
        results["mqtt_messages"] = count
        results["mqtt_points_verified"] = stored - before
        results["mqtt_gateway_msgs_per_s"] = (stored - before) / elapsed
        results["mqtt_vs_plain_paho"] = (
            results["mqtt_gateway_msgs_per_s"] / results["mqtt_plain_paho_msgs_per_s"]
        )
        results.update(await anomaly_runs(work, influx_url, broker.port))
    finally:
        broker.stop()
    return results
