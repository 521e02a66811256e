"""Two API nodes (in-process gateways, rules on) sharing one PostgreSQL.

An anomaly that node A's rules raise reaches an SSE client of node B; an order issued through
A's API is in force in the regime B's rules ask; a restarted node keeps everything.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.conftest import write_config
from tests.frames import qn_for, upload

CST = timezone(timedelta(hours=8))
AUTH = {"Authorization": "Bearer root"}


def node(tmp_path: Path, name: str, influx: str, database: str, dsn: str) -> Gateway:
    path = write_config(tmp_path / name, influx, database, cluster={"postgres_dsn": dsn})
    return Gateway(load_config(path))


async def sse_events(response: httpx.Response, wanted: int) -> list[dict[str, Any]]:
    """The first `wanted` events of an SSE response: id, event and the data's JSON."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif not line and "data" in current:
            events.append(current)
            current = {}
            if len(events) >= wanted:
                return events
    return events


async def wait_for(check: Any, timeout_s: float = 30.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_anomalies_orders_and_the_stream_cross_nodes(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    database: str,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "root:admin")
    a = node(tmp_path, "a", influx.url, database, pg_dsn)
    b = node(tmp_path, "b", influx.url, database, pg_dsn)
    await a.start()
    await b.start()
    restarted: Gateway | None = None
    try:
        assert a.api is not None and b.api is not None
        base_a = f"http://127.0.0.1:{a.api.port}"
        base_b = f"http://127.0.0.1:{b.api.port}"
        async with (
            httpx.AsyncClient(base_url=base_b, timeout=60) as client_b,
            client_b.stream("GET", "/api/v1/anomalies/stream", headers=AUTH) as stream,
        ):
            assert stream.status_code == 200
            dev = await DeviceClient.connect("127.0.0.1", a.hj212.port)  # devices on node A
            for i, value in enumerate([80.0, 20.0]):
                await dev.send(
                    upload(
                        qn=qn_for(700 + i),
                        data_time=datetime(2026, 4, 5, 9 + i),
                        values={"w01018": value},
                    )
                )
                assert (await dev.read_frame()).cn == "9014"
            await dev.close()
            seen = await asyncio.wait_for(sse_events(stream, 1), 60)
        assert seen[0]["data"]["type"] == "over_limit" and seen[0]["data"]["enterprise"] == "E1"
        recorded = a.anomalies.events_after(0) if a.anomalies else []
        assert seen[0]["id"] in [e.seq for e in recorded]
        assert b.anomalies is not None and b.anomalies.get(seen[0]["data"]["id"]) is not None

        starts = datetime(2026, 4, 6, 8, tzinfo=CST)
        async with httpx.AsyncClient(base_url=base_a, timeout=30) as client_a:
            reply = await client_a.post(
                "/api/v1/orders",
                json={
                    "kind": "shutdown",
                    "enterprise": "E1",
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(hours=8)).isoformat(),
                },
                headers=AUTH,
            )
        assert reply.status_code in (200, 201), reply.text
        order_id = reply.json()["id"]
        enterprise = b.registry().enterprise("E1")
        assert enterprise is not None and b.regime is not None
        regime_b = b.regime

        def in_force_on_b() -> bool:
            state = regime_b.in_force("E1", enterprise.region, starts + timedelta(hours=1))
            return [o.id for o in state.orders] == [order_id]

        assert await wait_for(in_force_on_b)

        await b.shutdown()  # a restart of node B keeps everything
        restarted = node(tmp_path, "b", influx.url, database, pg_dsn)
        await restarted.start()
        assert restarted.regime is not None and restarted.anomalies is not None
        kept = restarted.regime.get_order(order_id)
        assert kept is not None and kept.issued_by == reply.json()["issued_by"] != ""
        assert [e.seq for e in restarted.anomalies.events_after(0)] == [e.seq for e in recorded]
        assert restarted.api is not None
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{restarted.api.port}", timeout=60) as c,
            c.stream(
                "GET", "/api/v1/anomalies/stream", headers={**AUTH, "Last-Event-ID": "0"}
            ) as replay,
        ):
            replayed = await asyncio.wait_for(sse_events(replay, len(recorded)), 60)
        assert [e["id"] for e in replayed] == [e.seq for e in recorded]
    finally:
        await a.shutdown()
        if restarted is not None:
            await restarted.shutdown()
        else:
            await b.shutdown()
