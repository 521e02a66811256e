"""An API node beside rule workers: a real 3-node NATS cluster, PostgreSQL and InfluxDB; an
ingestion node with its API and one rule worker in this process. The ingestion node runs no
rules; its API serves what the worker records (anomalies, the SSE stream, the alarm's case,
device status) from PostgreSQL, and an order issued through it is in force for the worker's
rules."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.browser import Page, browser
from tests.cluster.conftest import cluster
from tests.conftest import write_config
from tests.frames import MN_WATER, qn_for, upload
from tests.pg.test_two_nodes import sse_events, wait_for

CST = timezone(timedelta(hours=8))
AUTH = {"Authorization": "Bearer root"}
PARTITIONS = 4


async def status_rows(page: Page) -> dict[str, str]:
    """The enterprise panel's rows for E1, loaded afresh."""
    await page.wait("document.getElementById('enterprise').options.length >= 2")
    await page.eval(
        "(() => { document.getElementById('status-body').replaceChildren();"
        " const s = document.getElementById('enterprise'); s.value = 'E1';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    await page.wait("document.querySelectorAll('#status-body dt').length > 0")
    rows: dict[str, str] = await page.eval(
        "Object.fromEntries([...document.querySelectorAll('#status-body dt')]"
        ".map(dt => [dt.textContent, dt.nextElementSibling.textContent]))"
    )
    return rows


def node(
    tmp_path: Path,
    name: str,
    influx: str,
    database: str,
    servers: list[localstack.NatsServer],
    role: list[str],
    api: dict[str, Any],
    dsn: str,
) -> Gateway:
    section = cluster(
        servers,
        role,
        rule_workers=True,
        partitions=PARTITIONS,
        lease_ttl_s=3.0,
        lease_renew_s=0.5,
        node=name,
        postgres_dsn=dsn,
    )
    path = write_config(
        tmp_path / name,
        influx,
        database,
        cluster=section,
        api=api,
        rules={"status_interval_s": 0.5},  # the workers' status snapshots, often
    )
    return Gateway(load_config(path))


async def test_the_api_node_serves_what_the_rule_worker_records(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "root:admin")
    ingest = node(tmp_path, "ingest", influx.url, database, nats, ["ingest", "writer"], {}, pg_dsn)
    worker = node(
        tmp_path, "rules", influx.url, database, nats, ["rules"], {"enabled": False}, pg_dsn
    )
    started: list[Gateway] = []
    try:
        for gw in (worker, ingest):
            await gw.start()
            started.append(gw)
        assert ingest.rules is None and ingest.rule_worker is None  # no rules on this node
        assert worker.rule_worker is not None and worker.regime is not None
        assert await wait_for(lambda: len(worker.rule_worker.owned) == PARTITIONS, 60)
        assert ingest.api is not None
        base = f"http://127.0.0.1:{ingest.api.port}"
        async with (
            httpx.AsyncClient(base_url=base, timeout=60) as client,
            client.stream("GET", "/api/v1/anomalies/stream", headers=AUTH) as stream,
        ):
            assert stream.status_code == 200
            dev = await DeviceClient.connect("127.0.0.1", ingest.hj212.port)
            for i, value in enumerate([80.0, 20.0]):  # over the limit, then back under it
                await dev.send(
                    upload(
                        qn=qn_for(800 + i),
                        data_time=datetime(2026, 4, 5, 9 + i),
                        values={"w01018": value},
                    )
                )
                assert (await dev.read_frame()).cn == "9014"
            await dev.close()
            seen = await asyncio.wait_for(sse_events(stream, 1), 60)
            listed = await client.get(
                "/api/v1/anomalies", params={"type": "over_limit"}, headers=AUTH
            )
        event = seen[0]
        assert event["data"]["type"] == "over_limit" and event["data"]["enterprise"] == "E1"
        assert worker.anomalies is not None
        assert event["id"] in [e.seq for e in worker.anomalies.events_after(0)]
        assert listed.status_code == 200, listed.text
        assert event["data"]["id"] in [a["id"] for a in listed.json()["items"]]

        starts = datetime(2026, 4, 6, 8, tzinfo=CST)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            reply = await client.post(
                "/api/v1/orders",
                json={
                    "kind": "shutdown",
                    "enterprise": "E1",
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(hours=8)).isoformat(),
                },
                headers=AUTH,
            )
            detail = await client.get("/api/v1/enterprises/E1", headers=AUTH)
        assert reply.status_code in (200, 201), reply.text
        order_id = reply.json()["id"]
        # the alarm's case, opened by the worker that recorded it, read through this node
        path = f"/api/v1/anomalies/{event['data']['id']}/case"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            case = await client.get(path, headers=AUTH)
            for _ in range(100):  # the worker opens it just after recording the anomaly
                if case.status_code != 404:
                    break
                await asyncio.sleep(0.1)
                case = await client.get(path, headers=AUTH)
        assert case.status_code == 200, case.text
        assert event["data"]["id"] in case.json()["anomalies"]
        enterprise = worker.registry().enterprise("E1")
        assert enterprise is not None
        regime = worker.regime

        def in_force_for_the_worker() -> bool:
            state = regime.in_force("E1", enterprise.region, starts + timedelta(hours=1))
            return [o.id for o in state.orders] == [order_id]

        assert await wait_for(in_force_for_the_worker)
        assert detail.status_code == 200, detail.text
        devices = detail.json()["status"]["devices"]
        assert {d["id"] for d in devices} >= {o.mn for o in enterprise.outlets}

        async def online_here() -> bool | None:  # as the worker last wrote it
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                reply = await client.get("/api/v1/enterprises/E1", headers=AUTH)
            found = [d for d in reply.json()["status"]["devices"] if d["id"] == MN_WATER]
            return found[0]["online"] if found else None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while await online_here() is not True and loop.time() < deadline:
            await asyncio.sleep(0.2)
        assert await online_here() is True

        # the page says how fresh the status is, and that it is stale once no worker writes
        async with browser(tmp_path / "profile") as page:
            await page.goto(f"{base}/#token=root")
            fresh = await status_rows(page)
            assert "已过时" not in fresh["状态截至"], fresh
            assert fresh["状态截至"].startswith(datetime.now(CST).strftime("%Y-%m-%d")), fresh
            await worker.shutdown()
            started.remove(worker)

            async def stale() -> bool:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    reply = await client.get("/api/v1/enterprises/E1", headers=AUTH)
                return bool(reply.json()["status"]["stale"])

            deadline = loop.time() + 60
            while not await stale():
                assert loop.time() < deadline, "the status never went stale"
                await asyncio.sleep(0.2)
            old = await status_rows(page)
            assert old["状态截至"].endswith("(已过时:规则节点未按时更新,设备状态未知)"), old
            assert old["在线设备"].startswith("未知"), old
            assert page.exceptions == []
    finally:
        for gw in reversed(started):
            await gw.shutdown()
