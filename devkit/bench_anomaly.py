"""The anomaly part of ``pollution-gateway bench``: how fast a frame becomes a published anomaly
(frame sent over TCP -> event received on MQTT), and how long after its threshold a silent
device is reported offline."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from adapters.hj212.device import DeviceClient
from devkit import localstack
from devkit.benchkit import write_config
from devkit.process import start_gateway, stop, wait_port
from devkit.simulator.devices import LoggerSpec, Upload
from devkit.simulator.loggers import encode

OFFLINE_AFTER_S = 5.0
REGISTRY = f"""
[[enterprises]]
id = "LAT"
  [[enterprises.outlets]]
  id = "O1"
  mn = "LATENCY000000000000000001"
  password = "123456"
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50 }}
  [[enterprises.outlets]]
  id = "O2"
  mn = "LATENCY000000000000000002"
  password = "123456"
  offline_after_s = {OFFLINE_AFTER_S}
"""


def _body(payload: object) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(payload if isinstance(payload, bytes | str) else b"{}")
    return data


def _hour_frame(mn: str, hour: int, value: float) -> bytes:
    """A 2061 hourly COD upload asking for a 9014."""
    moment = datetime(2025, 1, 1) + timedelta(hours=hour)
    logger = LoggerSpec(0, "O", mn, "32", "2017", password="123456")
    cp = f"DataTime={moment:%Y%m%d%H%M%S};w01018-Avg={value},w01018-Flag=N"
    return encode(
        logger, Upload(moment, logger, "2061", cp), f"{moment:%Y%m%d%H%M%S}{hour % 1000:03d}"
    )[0]


async def anomaly_runs(
    work: Path, influx_url: str, broker_port: int, frames: int = 200
) -> dict[str, float]:
    shutil.rmtree(work / "gw", ignore_errors=True)
    port, mport = localstack.free_port(), localstack.free_port()
    config = write_config(work, port, influx_url, 1, mport, mqtt_port=broker_port)
    (work / "registry.toml").write_text(REGISTRY)
    config.write_text(config.read_text().replace('topic_prefix = "bench"', 'topic_prefix = "lat"'))
    gateway = start_gateway(config, work / "gateway-anomaly.log")
    results: dict[str, float] = {}
    try:
        await wait_port(port)
        async with aiomqtt.Client("127.0.0.1", broker_port) as watcher:
            await watcher.subscribe("lat/anomalies/#", qos=1)
            await asyncio.sleep(1.0)
            dev = await DeviceClient.connect("127.0.0.1", port)
            quiet = await DeviceClient.connect("127.0.0.1", port)
            await quiet.send(_hour_frame("LATENCY000000000000000002", 0, 1.0))
            quiet_at = time.perf_counter()
            await quiet.read_frame()
            latencies: list[float] = []
            offline_after: float | None = None
            for i in range(frames):
                sent = time.perf_counter()
                await dev.send(_hour_frame("LATENCY000000000000000001", i, 60.0 if i % 2 else 10.0))
                await dev.read_frame()
                if i == 0:
                    continue  # a compliant first hour changes nothing
                async with asyncio.timeout(10):
                    async for message in watcher.messages:
                        body = _body(message.payload)
                        if body["anomaly"]["type"] == "device_offline":
                            offline_after = time.perf_counter() - quiet_at - OFFLINE_AFTER_S
                            continue
                        latencies.append(time.perf_counter() - sent)
                        break
            deadline = time.perf_counter() + 15
            while offline_after is None and time.perf_counter() < deadline:
                async with asyncio.timeout(max(0.1, deadline - time.perf_counter())):
                    async for message in watcher.messages:
                        body = _body(message.payload)
                        if body["anomaly"]["type"] == "device_offline":
                            offline_after = time.perf_counter() - quiet_at - OFFLINE_AFTER_S
                            break
            await dev.close()
            await quiet.close()
        latencies.sort()
        results["anomaly_events_measured"] = len(latencies)
        results["frame_to_anomaly_p50_ms"] = statistics.median(latencies) * 1000
        results["frame_to_anomaly_p99_ms"] = latencies[int(len(latencies) * 0.99) - 1] * 1000
        if offline_after is not None:
            results["offline_reported_after_threshold_s"] = offline_after
    finally:
        stop(gateway)
    return results
