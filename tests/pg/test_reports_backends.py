"""Reports over stores in PostgreSQL: the simulated month (tests/reports/month.py) played
once into SQLite files and once into PostgreSQL gives the same reports, daily, monthly,
scoped, feedback and CSV; a report on PostgreSQL reads what is committed, on a connection of
its own, off the event loop (tests/reports/test_build.py's check, again on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import tests.reports.month as scripted
from devkit import localstack
from gateway.anomalies.store import AnomalyStore
from gateway.cases.store import CaseStore, policy
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.cluster.pg_cases import PgCases
from gateway.regime import Regime
from gateway.reports import build
from tests.api.conftest import accounts_toml
from tests.reports.helpers import Clock, anomaly, handle
from tests.reports.month import Month
from tests.reports.test_build import (
    MARCH,
    NOW,
    REGISTRY,
    test_the_report_and_the_feedback_wait_for_a_worker_thread,
)
from tests.reports.test_month import ACCOUNTS, app_for

__all__ = ["test_the_report_and_the_feedback_wait_for_a_worker_thread"]  # with `sources` below


@pytest.fixture
def months(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Month, Month]]:
    """The month in SQLite files, and the same month in PostgreSQL (its regime a file)."""
    built: list[Month] = []
    for name in ("sqlite", "postgres"):
        folder = tmp_path / name
        folder.mkdir()
        with monkeypatch.context() as patch:
            if name == "postgres":
                patch.setattr(scripted, "AnomalyStore", lambda _: AnomalyStore(PgAnomalies(pg_dsn)))
                patch.setattr(
                    scripted,
                    "CaseStore",
                    lambda _, *a, **kw: CaseStore(PgCases(pg_dsn), *a, **kw),
                )
            built.append(scripted.build(folder, influx.url, "m_" + uuid.uuid4().hex[:12]))
    yield built[0], built[1]
    for month in built:
        month.close()


def stable(month: Month) -> dict[str, str]:
    """Names for the regime's random ids (alerts and orders), the same in both months."""
    names = {
        o.id: f"order/{o.enterprise}/{o.starts_at.isoformat()}" for o in month.regime.list_orders()
    }
    names |= {a.id: f"alert/{a.starts_at.isoformat()}" for a in month.regime.list_alerts()}
    return names


def renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, names) for v in value]
    if isinstance(value, str):
        for old, new in names.items():
            value = value.replace(old, new)
    return value


REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("chief", "/api/v1/reports/monthly", {"month": "2026-03"}),
    ("east", "/api/v1/reports/monthly", {"month": "2026-03"}),
    ("chief", "/api/v1/reports/monthly", {"month": "2026-03", "enterprise": "E2"}),
    ("chief", "/api/v1/reports/daily", {"day": "2026-03-15"}),  # E1 runs under its order
    ("chief", "/api/v1/reports/daily", {"day": "2026-03-20"}),  # the alert; E2 silent
    ("chief", "/api/v1/reports/feedback", {"month": "2026-03"}),  # with the thresholds
    ("east", "/api/v1/reports/feedback", {"month": "2026-03"}),
    ("chief", "/api/v1/reports/monthly", {"month": "2026-03", "format": "csv"}),
]


async def answers(month: Month, influx_url: str, accounts: Path) -> list[Any]:
    transport = httpx.ASGITransport(app=app_for(month, influx_url, accounts))
    out: list[Any] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        for name, url, params in REQUESTS:
            headers = {"Authorization": f"Bearer {ACCOUNTS[name][2]}"}
            reply = await api.get(url, params=params, headers=headers)
            assert reply.status_code == 200, reply.text
            body = reply.json() if params.get("format") != "csv" else reply.content.decode()
            out.append(renamed(body, stable(month)))
    return out


async def test_a_month_in_postgresql_reports_what_the_same_month_in_files_does(
    months: tuple[Month, Month], influx: localstack.ManagedProcess, tmp_path: Path
) -> None:
    on_files, on_pg = months
    assert isinstance(on_pg.cases.backend, PgCases) and not isinstance(
        on_files.cases.backend, PgCases
    )
    assert str(on_pg.store.path).startswith("postgresql://")
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    expected = await answers(on_files, influx.url, accounts)
    got = await answers(on_pg, influx.url, accounts)
    monthly = expected[0]  # the month did happen, and was handled
    assert monthly["anomalies"]["total"] >= 15 and monthly["timeliness"]["closed"] > 0
    assert len(monthly["compliance"]) == 4 and monthly["problems"] == []
    assert monthly["transmission"]["devices"][0]["received"] > 0
    assert any(r["verdicts"] for r in expected[5]["by_type"])
    for (name, url, params), want, have in zip(REQUESTS, expected, got, strict=True):
        assert have == want, (name, url, params)


# -- one report on PostgreSQL, as tests/reports/test_build.py builds it on files ----------------


@pytest.fixture
def sources(tmp_path: Path, pg_dsn: str) -> Iterator[build.Sources]:
    """test_build.py's 30 alarms, every third case signed and closed, in PostgreSQL."""
    clock = Clock(MARCH.start)
    store = AnomalyStore(PgAnomalies(pg_dsn))
    cases = CaseStore(PgCases(pg_dsn), policy(), clock=clock, join_same_day=False)
    store.add_listener(cases.on_anomaly)
    regime = Regime(tmp_path / "regime.sqlite")
    for n in range(30):
        start = MARCH.start + timedelta(hours=7 * n)
        clock.now = start + timedelta(minutes=1)
        store.record(anomaly("over_limit", f"E{1 + n % 2}", start, subject=f"outlet:x/{n}"))
    for c in cases.opened_between(MARCH.start, MARCH.end)[::3]:
        handle(cases, c, c.opened_at, verdict="false_alarm", close_h=5)
    yield build.Sources(store, cases, regime, REGISTRY, None)
    for s in (store, cases, regime):
        s.close()


async def test_a_report_on_postgresql_reads_what_is_committed(
    sources: build.Sources, pg_dsn: str
) -> None:
    late = anomaly("over_limit", "E1", MARCH.start + timedelta(days=20), subject="outlet:y")
    with psycopg.connect(pg_dsn) as writer:  # a write of another node, in progress
        writer.execute(
            "INSERT INTO anomaly (id, type, family, enterprise, state, started_at, body)"
            " VALUES (%s, 'over_limit', 'limit', 'E1', 'open', %s, %s)",
            (late.id, late.started_at, json.dumps(late.stored_json())),
        )
        report = await build.report(sources, MARCH, build.Scope(None), NOW)
        assert report.anomalies.total == 30  # not the uncommitted one
        writer.commit()
    assert (await build.report(sources, MARCH, build.Scope(None), NOW)).anomalies.total == 31


async def test_a_report_on_postgresql_does_not_wait_for_the_store_s_connection(
    sources: build.Sources,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def busy() -> None:  # a change in progress holds the case store's connection
        with sources.cases.backend.change():
            entered.set()
            release.wait(60)

    holder = threading.Thread(target=busy)
    holder.start()
    try:
        assert entered.wait(30)
        report = await asyncio.wait_for(build.report(sources, MARCH, build.Scope(None), NOW), 60)
        fb = await asyncio.wait_for(
            build.verdict_feedback(sources, MARCH, build.Scope(None), NOW, with_thresholds=False),
            60,
        )
        assert report.timeliness.opened == 30 and report.timeliness.closed == 10
        assert [(r.type, r.cases, r.false_alarm) for r in fb.by_type] == [("over_limit", 30, 10)]
        assert holder.is_alive()  # it was held all along
    finally:
        release.set()
        holder.join(30)
