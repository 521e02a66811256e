"""`/healthz` and `/readyz`: readiness names the component that is not ready and why (a full
spool, InfluxDB writes failing past `[api] influx_unhealthy_after_s`) and recovers with it; both
answer with the rules off. Against a real InfluxDB that is stopped and started again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.api.health import NotReady
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.frames import qn_for, upload


async def test_readyz_names_each_component_not_ready(make_app: Callable[..., FastAPI]) -> None:
    problems = [NotReady("spool", "full"), NotReady("influx", "writes failing")]
    app = make_app(ready=lambda: problems)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await c.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "not ready",
            "problems": [
                {"component": "spool", "reason": "full"},
                {"component": "influx", "reason": "writes failing"},
            ],
        }
        problems.clear()
        response = await c.get("/readyz")
        assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def get(gw: Gateway, path: str) -> httpx.Response:
    assert gw.api is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api.port}") as client:
        return await client.get(path)


async def wait_ready(gw: Gateway, ready: bool, timeout_s: float) -> httpx.Response:
    """/readyz once it answers ready (200) or not (503)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await get(gw, "/readyz")
        if (response.status_code == 200) == ready or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


def components(response: httpx.Response) -> dict[str, str]:
    return {p["component"]: p["reason"] for p in response.json().get("problems", [])}


@pytest.fixture
async def own_gateway(
    gateway_config: Callable[..., LoadedConfig], own_influx: localstack.ManagedProcess
) -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def make(**sections: dict[str, Any]) -> Gateway:
        gw = Gateway(gateway_config(influx_url=own_influx.url, **sections))
        await gw.start()
        started.append(gw)
        return gw

    try:
        yield make
    finally:
        for gw in started:
            await gw.shutdown()


def hourly(i: int) -> bytes:
    data_time = datetime(2026, 6, 1) + timedelta(hours=i)
    return upload(qn=qn_for(900 + i), data_time=data_time)


async def test_readyz_names_influx_failing_past_the_limit_and_recovers(
    own_gateway: Callable[..., Any], own_influx: localstack.ManagedProcess
) -> None:
    gw: Gateway = await own_gateway(api={"influx_unhealthy_after_s": 1.5})
    assert (await get(gw, "/readyz")).status_code == 200
    await asyncio.to_thread(own_influx.stop)
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    await dev.send(hourly(0))
    assert (await dev.read_frame()).cn == "9014"  # acknowledged from the spool
    failing_at = time.monotonic()
    early = await get(gw, "/readyz")  # the first failure is under the limit
    assert early.status_code == 200, early.text
    response = await wait_ready(gw, False, 15)
    assert response.status_code == 503 and time.monotonic() - failing_at >= 1.0
    assert response.json()["status"] == "not ready"
    assert "writes failing for" in components(response)["influx"]
    assert "spool" not in components(response)
    await asyncio.to_thread(own_influx.start)
    response = await wait_ready(gw, True, 30)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
    await dev.close()


async def test_readyz_names_the_full_spool_and_recovers(
    own_gateway: Callable[..., Any], own_influx: localstack.ManagedProcess
) -> None:
    gw: Gateway = await own_gateway(spool={"max_bytes": "64KiB", "segment_bytes": "64KiB"})
    await asyncio.to_thread(own_influx.stop)
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    for i in range(2000):  # a few hundred fill 64 KiB
        await dev.send(hourly(i))
        try:
            await dev.read_frame(timeout_s=1.0)
        except TimeoutError:
            break  # not acknowledged: the spool is full
    else:
        pytest.fail("the spool never filled")
    response = await get(gw, "/readyz")
    assert response.status_code == 503
    reason = components(response)["spool"]
    assert reason.startswith("full: ") and "acknowledgements wait" in reason
    assert "influx" not in components(response)  # under the default 60 s
    await asyncio.to_thread(own_influx.start)
    response = await wait_ready(gw, True, 30)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
    await dev.close()


async def test_health_with_the_rules_off(gateway_config: Callable[..., LoadedConfig]) -> None:
    gw = Gateway(gateway_config(rules={"enabled": False}))
    await gw.start()
    try:
        assert gw.anomalies is None and gw.api is not None
        assert (await get(gw, "/healthz")).json() == {"status": "ok"}
        ready = await get(gw, "/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert (await get(gw, "/metrics")).status_code == 200
        assert (await get(gw, "/api/v1/anomalies")).status_code == 404  # no rules, no API
    finally:
        await gw.shutdown()
    assert gw.readiness() == [NotReady("gateway", "stopping")]
