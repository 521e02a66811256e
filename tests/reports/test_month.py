"""A simulated month through the real rules engine: the monthly report's counts equal those
counted straight from the anomaly and case stores, its transmission rates what InfluxDB holds,
its compliance what was scripted, and a county officer's report holds the county only."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from devkit import localstack
from gateway.accounts import Accounts
from gateway.api import RegistryStatus, create_app
from gateway.config import InfluxSection
from tests.api.conftest import accounts_toml
from tests.conftest import influx_rows
from tests.reports.helpers import CST
from tests.reports.month import END, HOURS, START, Month

NOW = datetime(2026, 4, 2, 9, 0, tzinfo=CST)
ACCOUNTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "chief": ("admin", {"all_regions": True}, "chief-token-0123456789"),
    "east": ("officer", {"regions": ["C1"]}, "east-token-0123456789"),
}


def app_for(month: Month, influx_url: str, accounts_path: Any) -> Any:
    return create_app(
        store=month.store,
        regime=month.regime,
        registry=lambda: month.registry,
        status=RegistryStatus(lambda: month.registry),
        accounts=Accounts(accounts_path),
        clock=lambda: NOW,
        cases=month.cases,
        influx=InfluxSection(url=influx_url, database=month.database),
    )


@pytest.fixture
async def api(
    month: Month, influx: localstack.ManagedProcess, tmp_path: Any
) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    transport = httpx.ASGITransport(app=app_for(month, influx.url, path))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def monthly(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    reply = await api.get(
        "/api/v1/reports/monthly",
        params={"month": "2026-03"},
        headers={"Authorization": f"Bearer {ACCOUNTS[name][2]}"},
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def direct(month: Month, enterprises: set[str] | None = None) -> dict[str, Any]:
    """The month's figures counted straight from the stores."""
    everything, _ = month.store.query(limit=1_000_000)
    mine = [
        a
        for a in everything
        if START <= a.started_at < END and (enterprises is None or a.enterprise in enterprises)
    ]
    cases = [
        c
        for c in month.cases.query(now=NOW, limit=1_000_000)[0]
        if START <= c.opened_at < END and (enterprises is None or c.enterprise in enterprises)
    ]
    steps = {c.id: [s.action for s in month.cases.history(c.id)] for c in cases}
    case_of = {a.id: month.cases.case_of(a.id) for a in mine}
    return {
        "total": len(mine),
        "by_type": Counter(a.type for a in mine),
        "open": sum(1 for a in mine if a.state == "open"),
        "alarm": sum(1 for a in mine if a.severity == "alarm"),
        "by_case_state": Counter(c.state if c else "none" for c in case_of.values()),
        "by_verdict": Counter(
            c.finding.verdict for c in case_of.values() if c is not None and c.finding
        ),
        "opened": len(cases),
        "signed": sum(1 for c in cases if "sign" in steps[c.id]),
        "closed": sum(1 for c in cases if c.state == "closed"),
        "overdue": sum(1 for c in cases if c.overdue(NOW)),
    }


async def test_the_monthly_report_counts_what_the_stores_and_influxdb_hold(
    api: httpx.AsyncClient, month: Month, influx: localstack.ManagedProcess
) -> None:
    report = await monthly(api, "chief")
    expected = direct(month)
    assert expected["total"] >= 15 and len(expected["by_type"]) == 3  # the month did happen
    a = report["anomalies"]
    assert a["total"] == expected["total"]
    assert a["open"] == expected["open"] and a["alarm"] == expected["alarm"]
    assert {t["type"]: t["total"] for t in a["by_type"] if t["total"]} == expected["by_type"]
    got_case = {c["state"]: c["count"] for c in a["by_case_state"] if c["count"]}
    assert got_case == expected["by_case_state"]
    assert {v["verdict"]: v["count"] for v in a["by_verdict"] if v["count"]} == expected[
        "by_verdict"
    ]
    t = report["timeliness"]
    assert (t["opened"], t["signed"], t["closed"], t["overdue"]) == (
        expected["opened"],
        expected["signed"],
        expected["closed"],
        expected["overdue"],
    )
    assert expected["opened"] < expected["total"]  # the 12th's data_gap joined a case
    assert [e["enterprise"] for e in report["top_enterprises"]] == ["E1", "E2"]

    # transmission: distinct hours per MN, counted by InfluxDB itself
    rows = influx_rows(
        influx.url,
        month.database,
        'SELECT count("avg") FROM emission WHERE "interval" = \'hour\' AND time >= '
        f"'{START.isoformat()}' AND time < '{END.isoformat()}' GROUP BY time(1h), \"mn\"",
    )
    stored = Counter(r["mn"] for r in rows if r["count"])
    rates = {d["mn"]: (d["received"], d["hours"]) for d in report["transmission"]["devices"]}
    assert rates == {mn: (stored[mn], HOURS) for mn in stored}
    assert {mn: got for mn, (got, _) in rates.items()} == month.received
    assert month.received == {"MNE1DW1": HOURS - 3, "MNE2DW2": HOURS - 96}
    assert [d["mn"] for d in report["transmission"]["below"]] == ["MNE2DW2"]  # 87 %

    status = {(c["source"], c["enterprise"]): c["status"] for c in report["compliance"]}
    assert status == {
        ("order", "E1"): "violated",  # ran on under the order
        ("order", "E2"): "complied",  # stopped, its meter reporting
        ("alert", "E1"): "complied",
        ("alert", "E2"): "unverifiable",  # silent all that day
    }
    violated = next(c for c in report["compliance"] if c["status"] == "violated")
    kinds = {month.store.get(i).type for i in violated["anomalies"]}  # type: ignore[union-attr]
    assert kinds == {"production_during_shutdown"}
    assert report["compliance_counts"] == {
        "complied": 2,
        "violated": 1,
        "unverifiable": 1,
        "unknown": 0,
    }
    assert report["problems"] == []


async def test_a_county_officer_gets_the_county_only(api: httpx.AsyncClient, month: Month) -> None:
    report = await monthly(api, "east")
    expected = direct(month, {"E1"})
    assert report["anomalies"]["total"] == expected["total"] > 0
    assert report["timeliness"]["opened"] == expected["opened"]
    assert [e["enterprise"] for e in report["top_enterprises"]] == ["E1"]
    assert {d["enterprise"] for d in report["transmission"]["devices"]} == {"E1"}
    assert {c["enterprise"] for c in report["compliance"]} == {"E1"}


async def test_the_feedback_of_the_month_matches_the_verdicts(
    api: httpx.AsyncClient, month: Month
) -> None:
    reply = await api.get(
        "/api/v1/reports/feedback",
        params={"month": "2026-03"},
        headers={"Authorization": f"Bearer {ACCOUNTS['chief'][2]}"},
    )
    fb = reply.json()
    cases = month.cases.opened_between(START, END)
    verdicts: Counter[str] = Counter()
    for c in cases:
        types = {month.store.get(i).type for i in c.anomalies}  # type: ignore[union-attr]
        if c.finding is not None and "over_limit" in types:
            verdicts[c.finding.verdict] += 1
    row = next(r for r in fb["by_type"] if r["type"] == "over_limit")
    assert row["verdicts"] == sum(verdicts.values()) > 0
    assert row["false_alarm"] == verdicts["false_alarm"]
    assert row["confirmed"] == verdicts["confirmed"]
    assert (
        sum(r["cases"] for r in fb["by_type_region"] if r["type"] == "over_limit") == row["cases"]
    )
    high = [h["type"] for h in fb["high_false_alarm"]]
    assert ("over_limit" in high) == (
        row["verdicts"] >= 5 and row["false_alarm"] >= 0.3 * row["verdicts"]
    )
