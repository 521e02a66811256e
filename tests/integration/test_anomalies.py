"""From frames over TCP to anomalies: the rule engine inside the running gateway."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.model import DeviceEvent
from gateway.rules.offline import DeviceOffline
from gateway.supervisor import Gateway
from tests.conftest import influx_rows
from tests.frames import MN_WATER, qn_for, upload


async def test_over_limit_hours_become_one_anomaly_in_store_and_influx(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    for i, value in enumerate([60.0, 70.0, 30.0]):  # COD limit 50 mg/L: two hours over
        await dev.send(
            upload(qn=qn_for(i), data_time=datetime(2026, 4, 2, 8 + i), values={"w01018": value})
        )
        assert (await dev.read_frame()).cn == "9014"
    assert gateway.anomalies is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        items, total = gateway.anomalies.query(type_="over_limit")
        if total and items[0].state == "closed":
            break
        await asyncio.sleep(0.05)
    assert total == 1
    anomaly = items[0]
    assert (anomaly.enterprise, anomaly.subject, anomaly.severity) == (
        "E1",
        "outlet:E1/DW001/w01018",
        "alarm",
    )
    assert [h["value"] for h in anomaly.evidence["hours"]] == [60.0, 70.0]
    assert anomaly.started_at.isoformat() == "2026-04-02T00:00:00+00:00"
    assert (
        anomaly.ended_at is not None and anomaly.ended_at.isoformat() == "2026-04-02T02:00:00+00:00"
    )
    kinds = [e.event for e in gateway.anomalies.events_after(0) if e.anomaly.id == anomaly.id]
    assert kinds == ["opened", "updated", "closed"]
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    # InfluxDB 1.x may show a point's fields one by one: wait for those asserted
    while time.monotonic() < deadline and not (
        rows and rows[0]["state"] == "closed" and rows[0]["id"] and rows[0]["evidence"]
    ):
        rows = await asyncio.to_thread(
            influx_rows, influx.url, database, "SELECT * FROM anomaly WHERE \"type\" = 'over_limit'"
        )
        await asyncio.sleep(0.1)
    assert len(rows) == 1 and rows[0]["state"] == "closed" and rows[0]["id"] == anomaly.id
    assert json.loads(str(rows[0]["evidence"]))["limit"] == 50
    await dev.close()


async def test_escalated_device_offline_keeps_one_series_in_influx(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    """Warning, then alarm, then closed: every version overwrites the same point, so InfluxDB
    holds one series for the anomaly and no version is left behind as open."""
    assert gateway.anomalies is not None
    t0 = datetime(2026, 4, 8, tzinfo=UTC)
    subject = f"mn:{MN_WATER}"
    rule = DeviceOffline(gateway.registry, started_at=t0)
    versions = [a for a in rule.on_tick(t0 + timedelta(minutes=10)) if a.subject == subject]
    versions += [a for a in rule.on_tick(t0 + timedelta(minutes=61)) if a.subject == subject]
    versions += rule.on_device_event(DeviceEvent("contact", subject, t0 + timedelta(minutes=70)))
    assert [(a.severity, a.state) for a in versions] == [
        ("warning", "open"),
        ("alarm", "open"),
        ("alarm", "closed"),
    ]
    events = [gateway.anomalies.record(a) for a in versions]  # the store's listeners publish
    assert [e.event if e else None for e in events] == ["opened", "updated", "closed"]
    anomaly_id = versions[0].id
    query = (
        f"SELECT * FROM anomaly WHERE \"type\" = 'device_offline' AND subject = '{subject}'"
        " GROUP BY *"
    )
    asserted = ("id", "state", "severity", "summary", "evidence", "ended_at")
    series: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    # InfluxDB 1.x may show a point's fields one by one: wait for every one asserted
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(localstack.query, influx.url, database, query)
        series = [s for r in result.get("results", []) for s in r.get("series", [])]
        rows = [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]
        complete = rows and all(r.get(name) is not None for r in rows for name in asserted)
        if complete and any(r["state"] == "closed" and r["severity"] == "alarm" for r in rows):
            break
        await asyncio.sleep(0.1)
    assert len(series) == 1, [s.get("tags") for s in series]
    assert series[0]["tags"] == {"enterprise": "E1", "subject": subject, "type": "device_offline"}
    rows = [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]]
    assert len(rows) == 1  # time = started_at: each version overwrote the one before
    (latest,) = rows
    assert (latest["id"], latest["severity"], latest["state"]) == (anomaly_id, "alarm", "closed")
    assert latest["time"] == "2026-04-08T00:00:00Z"
    assert latest["ended_at"] == "2026-04-08T01:10:00+00:00"
    assert json.loads(str(latest["evidence"]))["silence_s"] == 4200
    assert "离线" in str(latest["summary"])  # the officers' Chinese summary


async def test_wrong_password_opens_auth_failure_once(gateway: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    for i in range(5):
        await dev.send(upload(pw="wrong", qn=qn_for(100 + i)))
    await dev.send(upload(qn=qn_for(200)))  # then the right password
    assert (await dev.read_frame()).qn == qn_for(200)
    assert gateway.anomalies is not None
    items, total = gateway.anomalies.query(type_="auth_failure")
    # one anomaly for the five frames (its count is updated at most every 5 min); a good frame
    # does not close it (an impostor may be interleaving): 15 quiet minutes do
    assert total == 1 and items[0].state == "open" and items[0].evidence["frames"] == 1
    await dev.close()


async def test_officer_asks_the_api_what_is_wrong_at_an_enterprise(
    gateway_config: object, monkeypatch: object
) -> None:
    import httpx

    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "officer-token:viewer")  # type: ignore[attr-defined]
    gw = Gateway(gateway_config())  # type: ignore[operator]
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        for i, value in enumerate([80.0, 20.0]):
            await dev.send(
                upload(
                    qn=qn_for(300 + i),
                    data_time=datetime(2026, 4, 5, 9 + i),
                    values={"w01018": value},
                )
            )
            await dev.read_frame()
        await dev.close()
        assert gw.api is not None
        base = f"http://127.0.0.1:{gw.api.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/api/v1/anomalies")).status_code == 401
            reply = await client.get(
                "/api/v1/anomalies",
                params={"enterprise": "E1", "since": "2026-04-05T00:00:00+08:00"},
                headers={"Authorization": "Bearer officer-token"},
            )
            assert reply.status_code == 200
            body = reply.json()
            over = [a for a in body["items"] if a["type"] == "over_limit"]
            assert len(over) == 1
            assert over[0]["state"] == "closed" and over[0]["evidence"]["hours"][0]["value"] == 80.0
            assert "排放限值50 mg/L" in over[0]["summary"]  # Chinese by default
            health = await client.get("/healthz")
            assert health.status_code == 200
            auth = {"Authorization": "Bearer officer-token"}
            online = (
                await client.get("/api/v1/devices", params={"state": "online"}, headers=auth)
            ).json()
            assert (
                MN_WATER in [d["id"] for d in online["items"]]
                if isinstance(online, dict)
                else MN_WATER in [d["id"] for d in online]
            )
            ent = (await client.get("/api/v1/enterprises/E1", headers=auth)).json()
            assert ent["status"]["devices_online"] >= 1
    finally:
        await gw.shutdown()


async def test_skipped_hour_is_requested_backfilled_and_the_gap_closes(gateway: Gateway) -> None:
    from adapters.hj212.builder import execution_answer, request_answer
    from adapters.hj212.cp import parse_cp

    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    await dev.send(
        upload(qn=qn_for(400), data_time=datetime(2026, 4, 6, 8), values={"w01018": 5.0})
    )
    assert (await dev.read_frame()).cn == "9014"
    await dev.send(
        upload(qn=qn_for(401), data_time=datetime(2026, 4, 6, 10), values={"w01018": 6.0})
    )
    assert (await dev.read_frame()).cn == "9014"
    request = await dev.read_frame()  # the gateway asks for the skipped hour
    assert (request.cn, request.mn, request.st) == ("2061", "23040281003022", "91") or (
        request.cn == "2061" and request.wants_reply
    )
    assert parse_cp(request.cp).params == {
        "BeginTime": "20260406090000",
        "EndTime": "20260406090000",
    }
    await dev.send(request_answer(request))
    await dev.send(
        upload(qn=qn_for(402), data_time=datetime(2026, 4, 6, 9), values={"w01018": 5.5})
    )
    assert (await dev.read_frame()).qn == qn_for(402)
    await dev.send(execution_answer(request))
    assert gateway.anomalies is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        items, total = gateway.anomalies.query(type_="data_gap")
        if total and items[0].state == "closed":
            break
        await asyncio.sleep(0.05)
    assert total == 1
    gap = items[0]
    assert gap.state == "closed" and gap.evidence["closed_as"] == "backfilled"
    assert gap.evidence["backfill_requested"] is True
    assert gap.started_at.isoformat() == "2026-04-06T01:00:00+00:00"
    assert gap.ended_at is not None and gap.ended_at.isoformat() == "2026-04-06T02:00:00+00:00"
    await dev.close()


async def test_registry_reload_through_the_api(gateway_config: object, monkeypatch: object) -> None:
    import httpx

    from tests.conftest import REGISTRY

    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "root:admin,eyes:viewer")  # type: ignore[attr-defined]
    loaded = gateway_config()  # type: ignore[operator]
    gw = Gateway(loaded)
    await gw.start()
    registry_file = loaded.path.parent / "registry.toml"
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        await dev.send(upload(mn="NEWLOGGER0001", qn=qn_for(500)))
        assert await dev.expect_nothing(0.5)  # not registered yet
        assert gw.api is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api.port}") as client:
            viewer = await client.post(
                "/api/v1/registry/reload", headers={"Authorization": "Bearer eyes"}
            )
            assert viewer.status_code == 403
            registry_file.write_text(REGISTRY + '\n[[enterprises]]\nid = "E1"\n')  # E1 twice
            broken = await client.post(
                "/api/v1/registry/reload", headers={"Authorization": "Bearer root"}
            )
            assert broken.status_code == 422 and "appears twice" in broken.text
            registry_file.write_text("")  # emptied (a truncated copy): it would drop everyone
            empty = await client.post(
                "/api/v1/registry/reload", headers={"Authorization": "Bearer root"}
            )
            assert empty.status_code == 422 and "no enterprises" in empty.text
            assert gw.registry().enterprise("E1") is not None
            registry_file.write_text(
                REGISTRY
                + """
[[enterprises]]
id = "NEWCO"
  [[enterprises.outlets]]
  id = "O1"
  mn = "NEWLOGGER0001"
  password = "123456"
"""
            )
            ok = await client.post(
                "/api/v1/registry/reload", headers={"Authorization": "Bearer root"}
            )
            assert ok.status_code == 200 and ok.json()["enterprises"] == 2
        await dev.send(upload(mn="NEWLOGGER0001", qn=qn_for(501)))
        assert (await dev.read_frame()).qn == qn_for(501)
        await dev.close()
    finally:
        await gw.shutdown()


async def test_device_status_points_are_written(
    gateway_config: object, influx: localstack.ManagedProcess, database: str
) -> None:
    gw = Gateway(gateway_config(rules={"status_interval_s": 0.3}))  # type: ignore[operator]
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        await dev.send(upload(qn=qn_for(600)))
        await dev.read_frame()
        await dev.close()
        deadline = time.monotonic() + 10
        rows: list[dict[str, object]] = []
        # InfluxDB 1.x may show a point's fields one by one: wait for the one asserted
        while time.monotonic() < deadline and not (rows and rows[-1].get("online") is not None):
            await asyncio.sleep(0.3)
            rows = await asyncio.to_thread(
                influx_rows,
                influx.url,
                database,
                f"SELECT * FROM device_status WHERE device = '{MN_WATER}'",
            )
        assert rows and rows[-1]["online"] is True and rows[-1]["kind"] == "hj212"
        assert rows[-1]["enterprise"] == "E1"
    finally:
        await gw.shutdown()


async def test_registry_control_periods_are_in_force_in_the_daemon(
    tmp_path: object, influx: localstack.ManagedProcess, database: str
) -> None:
    from pathlib import Path

    from gateway.config import load_config
    from tests.conftest import REGISTRY, write_config

    registry = REGISTRY.replace('name = "Test plant"', 'name = "Test plant"\nregion = "city-z"')
    registry = (
        """
[[control_periods]]
name = "games"
level = "orange"
regions = ["city-z"]
windows = [["2026-02-01T00:00:00+08:00", "2026-02-20T00:00:00+08:00"]]
"""
        + registry
    )
    config = write_config(Path(str(tmp_path)) / "gw", influx.url, database, registry=registry)
    gw = Gateway(load_config(config))
    await gw.start()
    try:
        assert gw.regime is not None
        inside = gw.regime.in_force(
            "E1", "city-z", datetime.fromisoformat("2026-02-10T08:00:00+08:00")
        )
        outside = gw.regime.in_force(
            "E1", "city-z", datetime.fromisoformat("2026-03-10T08:00:00+08:00")
        )
        assert (inside.level, outside.level) == ("orange", None)
        assert inside.alerts[0].id == "period:games:0"
    finally:
        await gw.shutdown()
