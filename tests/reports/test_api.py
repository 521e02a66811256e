"""The report routes with named accounts and their scopes, on real stores and a real InfluxDB:
what a scoped caller sees (never another enterprise's anomaly, device or case), cases of the
previous month left out of this month's handling, the CSV for Excel, the feedback by role, and
the routes against their OpenAPI document."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from devkit import localstack
from gateway.accounts import Accounts
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.audit import AuditLog
from gateway.cases.store import CaseStore, policy
from gateway.config import InfluxSection
from gateway.regime import OrderSpec, Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import accounts_toml
from tests.api.test_openapi import CHECKS
from tests.reports.helpers import CST, Clock, anomaly, handle, hourly, write_points

DAY = datetime(2026, 3, 10, tzinfo=CST)
NOW = datetime(2026, 4, 2, 9, 0, tzinfo=CST)
REGISTRY = {
    "regions": [
        {"id": "320000", "name": "江苏省", "level": "province"},
        {"id": "320500", "name": "苏州市", "parent": "320000", "level": "city"},
        {"id": "320505", "name": "虎丘区", "parent": "320500", "level": "county"},
        {"id": "320506", "name": "吴中区", "parent": "320500", "level": "county"},
        {"id": "320200", "name": "无锡市", "parent": "320000", "level": "city"},
        {"id": "320214", "name": "新吴区", "parent": "320200", "level": "county"},
    ],
    "enterprises": [
        {
            "id": eid,
            "name": f"企业{n}",
            "region": region,
            "outlets": [{"id": "DW1", "mn": f"MN{n}", "open": True}],
            "meters": [{"id": "P1", "role": "production", "line": "L1"}],
        }
        for n, (eid, region) in enumerate(
            [("E1", "320505"), ("E2", "320506"), ("E3", "320214")], start=1
        )
    ],
}
ACCOUNTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "chief": ("admin", {"all_regions": True}, "chief-token-0123456789"),
    "county": ("officer", {"regions": ["320505"]}, "county-token-0123456789"),  # E1
    "city": ("viewer", {"regions": ["320500"]}, "city-token-0123456789"),  # E1, E2
    "plant": ("enterprise", {"enterprises": ["E1"]}, "plant-token-0123456789"),
}


def who(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ACCOUNTS[name][2]}"}


@pytest.fixture
def clock() -> Clock:
    return Clock(DAY)


@pytest.fixture
def stores(tmp_path: Path, clock: Clock) -> Iterator[tuple[AnomalyStore, CaseStore, Regime]]:
    store = AnomalyStore(tmp_path / "anomalies.sqlite")
    cases = CaseStore(tmp_path / "cases.sqlite", policy(), clock=clock)
    store.add_listener(cases.on_anomaly)
    regime = Regime(tmp_path / "regime.sqlite")
    yield store, cases, regime
    for s in (store, cases, regime):
        s.close()


@pytest.fixture
async def api(
    tmp_path: Path,
    stores: tuple[AnomalyStore, CaseStore, Regime],
    influx: localstack.ManagedProcess,
    database: str,
) -> AsyncIterator[httpx.AsyncClient]:
    store, cases, regime = stores
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    audit = AuditLog(tmp_path / "audit.sqlite")
    app = create_app(
        store=store,
        regime=regime,
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        accounts=Accounts(path),
        clock=lambda: NOW,
        audit=audit,
        cases=cases,
        influx=InfluxSection(url=influx.url, database=database),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c
    audit.close()


def seed(store: AnomalyStore, cases: CaseStore, clock: Clock) -> None:
    """Each enterprise: over_limit alarms on DAY (E1 two, E2 one, E3 three), one a day later."""
    for ent, n in (("E1", 2), ("E2", 1), ("E3", 3)):
        for i in range(n):
            start = DAY + timedelta(hours=3 + i)
            clock.now = start + timedelta(minutes=5)
            store.record(anomaly("over_limit", ent, start, subject=f"outlet:{ent}/DW1/w0{i}"))
    store.record(anomaly("data_gap", "E2", DAY + timedelta(days=1), subject="mn:MN2"))


async def daily(api: httpx.AsyncClient, name: str, **params: str) -> dict[str, Any]:
    reply = await api.get(
        "/api/v1/reports/daily", params={"day": "2026-03-10", **params}, headers=who(name)
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_a_scoped_report_never_counts_another_enterprises_anomalies(
    api: httpx.AsyncClient,
    stores: tuple[AnomalyStore, CaseStore, Regime],
    clock: Clock,
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    store, cases, _ = stores
    seed(store, cases, clock)
    points = [
        hourly(ent, "DW1", mn, DAY + timedelta(hours=h), code, 10.0)
        for ent, mn, hours in (("E1", "MN1", range(24)), ("E2", "MN2", range(20)))
        for h in hours
        for code in ("w01018", "w21003")
    ]
    write_points(influx.url, database, points)

    county = await daily(api, "county")
    assert county["scope"] == {"region": None, "enterprise": None, "enterprises": 1, "whole": False}
    assert county["anomalies"]["total"] == 2
    assert [e["enterprise"] for e in county["top_enterprises"]] == ["E1"]
    assert [d["mn"] for d in county["transmission"]["devices"]] == ["MN1"]
    assert county["transmission"]["devices"][0]["rate"] == 1.0
    assert county["transmission"]["below"] == []  # 24 of 24 hours
    assert county["timeliness"]["opened"] == 1  # E1's two alarms of one day: one case

    city = await daily(api, "city")
    assert city["anomalies"]["total"] == 3
    assert {d["mn"]: (d["received"], d["hours"]) for d in city["transmission"]["devices"]} == {
        "MN1": (24, 24),
        "MN2": (20, 24),
    }
    assert [d["mn"] for d in city["transmission"]["below"]] == ["MN2"]

    chief = await daily(api, "chief")
    assert chief["anomalies"]["total"] == 6 and chief["scope"]["whole"]
    assert [e["enterprise"] for e in chief["top_enterprises"]] == ["E3", "E1", "E2"]
    wuzhong = await daily(api, "chief", region="320506")
    assert wuzhong["anomalies"]["total"] == 1 and wuzhong["scope"]["enterprises"] == 1
    plant = await daily(api, "plant")
    assert plant["anomalies"]["total"] == 2
    assert {d["enterprise"] for d in plant["transmission"]["devices"]} == {"E1"}
    one = await daily(api, "city", enterprise="E2")
    assert one["anomalies"]["total"] == 1

    for name, ent in (("county", "E2"), ("plant", "E3"), ("city", "E3"), ("chief", "E9")):
        reply = await api.get(
            "/api/v1/reports/daily",
            params={"day": "2026-03-10", "enterprise": ent},
            headers=who(name),
        )
        assert reply.status_code == 404, (name, ent)


async def test_a_case_opened_the_previous_month_is_not_in_this_months_handling(
    api: httpx.AsyncClient, stores: tuple[AnomalyStore, CaseStore, Regime], clock: Clock
) -> None:
    store, cases, _ = stores
    late = datetime(2026, 2, 28, 23, 30, tzinfo=CST)  # 15:30 UTC: March in no time zone
    for n, start in enumerate([late, datetime(2026, 3, 1, 0, 10, tzinfo=CST)]):
        clock.now = start + timedelta(minutes=10)
        store.record(anomaly("over_limit", "E1", start, subject=f"outlet:E1/DW1/{n}"))
    feb, mar = cases.query(now=NOW)[0][::-1]
    assert feb.opened_at.astimezone(CST).month == 2
    handle(cases, feb, clock.now, sign_h=1, verdict="confirmed", close_h=5)
    handle(cases, mar, mar.opened_at, sign_h=3)

    async def month(text: str) -> dict[str, Any]:
        reply = await api.get(
            "/api/v1/reports/monthly", params={"month": text}, headers=who("county")
        )
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    march, february = await month("2026-03"), await month("2026-02")
    assert march["timeliness"] == {
        "opened": 1,
        "signed": 1,
        "closed": 0,
        "median_sign_h": 3.0,
        "median_close_h": None,
        "overdue": 1,  # its deadline (72 h after opening) has passed, and it is not verified
    }
    assert february["timeliness"]["opened"] == 1 and february["timeliness"]["closed"] == 1
    assert february["anomalies"]["total"] == 1 and march["anomalies"]["total"] == 1
    by_verdict = {v["verdict"]: v["count"] for v in february["anomalies"]["by_verdict"]}
    assert by_verdict["confirmed"] == 1
    by_case = {c["state"]: c["count"] for c in march["anomalies"]["by_case_state"]}
    assert by_case["checking"] == 1 and by_case["none"] == 0


async def test_the_csv_opens_in_excel_with_chinese_headers(
    api: httpx.AsyncClient, stores: tuple[AnomalyStore, CaseStore, Regime], clock: Clock
) -> None:
    store, cases, regime = stores
    seed(store, cases, clock)
    regime.add_order(
        OrderSpec(kind="shutdown", enterprise="E1", starts_at=DAY, ends_at=DAY + timedelta(hours=6))
    )
    reply = await api.get(
        "/api/v1/reports/daily", params={"day": "2026-03-10", "format": "csv"}, headers=who("city")
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/csv")
    assert "report-daily-2026-03-10.csv" in reply.headers["content-disposition"]
    assert reply.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(reply.content[3:].decode("utf-8"))))
    assert rows[0] == ["日报"]
    assert ["类型", "合计", "进行中", "已结束", "报警", "预警"] in rows
    assert ["超标排放", "3", "3", "0", "3", "0"] in rows
    assert not any("E3" in cell for row in rows for cell in row)
    order = next(r for r in rows if r[:1] == ["停产指令"])
    assert order[2:4] == ["E1", "企业1"] and order[6] == "无法核实(无数据)"  # no data stored
    english = await api.get(
        "/api/v1/reports/daily",
        params={"day": "2026-03-10", "format": "csv", "lang": "en"},
        headers=who("city"),
    )
    assert english.content[3:].decode("utf-8").startswith("Daily report")


async def test_the_feedback_is_for_officers_and_the_high_list_for_admins(
    api: httpx.AsyncClient, stores: tuple[AnomalyStore, CaseStore, Regime], clock: Clock
) -> None:
    store, cases, _ = stores
    for i, verdict in enumerate(
        ["false_alarm", "false_alarm", "confirmed", "confirmed", "device_fault"]
    ):
        start = DAY + timedelta(days=i)  # a day each: no case joins another
        clock.now = start + timedelta(minutes=5)
        store.record(anomaly("over_limit", "E1", start, subject=f"outlet:E1/DW1/{i}"))
        case = cases.case_of(anomaly("over_limit", "E1", start, subject=f"outlet:E1/DW1/{i}").id)
        assert case is not None
        handle(cases, case, clock.now, verdict=verdict, close_h=6)
    params = {"month": "2026-03"}
    for name in ("city", "plant"):
        reply = await api.get("/api/v1/reports/feedback", params=params, headers=who(name))
        assert reply.status_code == 403, name
    officer = (
        await api.get("/api/v1/reports/feedback", params=params, headers=who("county"))
    ).json()
    assert officer["high_false_alarm"] is None
    row = officer["by_type"][0]
    assert (row["type"], row["cases"], row["verdicts"], row["false_alarm_share"]) == (
        "over_limit",
        5,
        5,
        0.4,
    )
    assert row["median_close_h"] == 6.0 and row["median_sign_h"] == 1.0
    assert [(r["type"], r["region"]) for r in officer["by_type_region"]] == [
        ("over_limit", "320505")
    ]
    admin = (await api.get("/api/v1/reports/feedback", params=params, headers=who("chief"))).json()
    assert [h["type"] for h in admin["high_false_alarm"]] == ["over_limit"]
    assert admin["high_false_alarm"][0]["false_alarm"] == 2
    other = (
        await api.get("/api/v1/reports/feedback", params={"month": "2026-02"}, headers=who("chief"))
    ).json()
    assert other["by_type"] == [] and other["high_false_alarm"] == []


async def test_a_period_that_is_no_period_or_has_not_begun_is_refused(
    api: httpx.AsyncClient,
) -> None:
    for path, params, code in (
        ("daily", {"day": "2026-02-30"}, 400),
        ("daily", {"day": "2026-04-03"}, 400),  # tomorrow
        ("monthly", {"month": "2026-13"}, 400),
        ("monthly", {"month": "2026-05"}, 400),
        ("monthly", {"month": "March"}, 422),
        ("daily", {}, 422),
        ("monthly", {"month": "0001-01"}, 400),  # no year before 2000 or after 2099
        ("daily", {"day": "0001-01-01"}, 400),
        ("daily", {"day": "9999-12-31"}, 400),
        ("monthly", {"month": "1999-12"}, 400),
        ("feedback", {"month": "0001-01"}, 400),
    ):
        reply = await api.get(f"/api/v1/reports/{path}", params=params, headers=who("chief"))
        assert reply.status_code == code, (path, params)
        if code == 400:
            assert reply.json()["detail"], (path, params)
    today = await api.get(
        "/api/v1/reports/daily", params={"day": "2026-04-02"}, headers=who("chief")
    )
    assert today.json()["period"]["hours_ended"] == 9  # 09:00 Beijing
    assert (await api.get("/api/v1/reports/daily", params={"day": "2026-03-10"})).status_code == 401


def test_the_report_routes_conform_to_the_openapi_document(tmp_path: Path) -> None:
    store = AnomalyStore(tmp_path / "anomalies.sqlite")
    cases = CaseStore(tmp_path / "cases.sqlite", clock=lambda: DAY)
    store.add_listener(cases.on_anomaly)
    store.record(anomaly("over_limit", "E1", DAY))
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    app = create_app(
        store=store,
        regime=Regime(tmp_path / "regime.sqlite"),
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        accounts=Accounts(path),
        clock=lambda: NOW,
        cases=cases,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    ours = [op for op in operations if "/reports/" in op.path]
    assert len(ours) == 3
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for operation in ours:

            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(headers=who("chief"), checks=CHECKS)

            try:
                check()
            except Exception as exc:
                exc.add_note(f"operation: {operation.label} ({mode.value})")
                raise
