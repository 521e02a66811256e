"""How a report is built: off the event loop (its file reads and figures wait for a worker
thread, never run on the loop), on read-only connections that see only what is committed, and
`problems` by code when InfluxDB is not configured."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.accounts import Accounts
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.cases.store import CaseStore, policy
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from gateway.reports import build, period, problems
from tests.api.conftest import accounts_toml
from tests.reports.helpers import CST, Clock, anomaly, handle

MARCH = period.month(2026, 3)
NOW = datetime(2026, 4, 2, 9, tzinfo=CST)
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {"id": ent, "outlets": [{"id": "DW1", "mn": f"MN{ent}", "open": True}]}
                for ent in ("E1", "E2")
            ]
        }
    )
)


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[build.Sources]:
    clock = Clock(MARCH.start)
    store = AnomalyStore(tmp_path / "anomalies.sqlite")
    cases = CaseStore(tmp_path / "cases.sqlite", policy(), clock=clock, join_same_day=False)
    store.add_listener(cases.on_anomaly)
    regime = Regime(tmp_path / "regime.sqlite")
    for n in range(30):  # 30 alarms, one case each; every third case signed and closed
        start = MARCH.start + timedelta(hours=7 * n)
        clock.now = start + timedelta(minutes=1)
        store.record(anomaly("over_limit", f"E{1 + n % 2}", start, subject=f"outlet:x/{n}"))
    for c in cases.opened_between(MARCH.start, MARCH.end)[::3]:
        handle(cases, c, c.opened_at, verdict="false_alarm", close_h=5)
    yield build.Sources(store, cases, regime, REGISTRY, None)
    for s in (store, cases, regime):
        s.close()


async def test_the_report_and_the_feedback_wait_for_a_worker_thread(
    sources: build.Sources,
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    held = threading.Event()
    blocker = loop.run_in_executor(None, held.wait)  # the only worker, held
    made = asyncio.create_task(build.report(sources, MARCH, build.Scope(None), NOW))
    fed = asyncio.create_task(
        build.verdict_feedback(sources, MARCH, build.Scope(None), NOW, with_thresholds=True)
    )
    for _ in range(50):
        await asyncio.sleep(0)
    assert not made.done() and not fed.done()  # nothing of them ran on the loop
    held.set()
    await blocker
    report, fb = await made, await fed
    assert report.anomalies.total == 30 and report.timeliness.opened == 30
    assert report.timeliness.closed == 10 and report.timeliness.median_close_h == 5.0
    by_case = {c.state: c.count for c in report.anomalies.by_case_state}
    assert by_case["closed"] == 10 and by_case["new"] == 20
    assert {v.verdict: v.count for v in report.anomalies.by_verdict}["false_alarm"] == 10
    assert [(r.type, r.cases, r.false_alarm) for r in fb.by_type] == [("over_limit", 30, 10)]
    assert [h.type for h in fb.high_false_alarm or []] == ["over_limit"]
    scoped = await build.report(sources, MARCH, build.Scope(frozenset({"E1"})), NOW)
    assert scoped.anomalies.total == 15 and scoped.timeliness.opened == 15


async def test_a_report_reads_what_is_committed_while_the_store_is_written(
    sources: build.Sources,
) -> None:
    writer = sqlite3.connect(str(sources.store.path), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a write in progress holds the file's write lock
        late = anomaly("over_limit", "E1", MARCH.start + timedelta(days=20), subject="outlet:y")
        writer.execute(
            "INSERT INTO anomaly (id, type, family, enterprise, state, started_at, body)"
            " VALUES (?, 'over_limit', 'limit', 'E1', 'open', ?, ?)",
            (late.id, "2026-03-21T00:00:00.000000Z", json.dumps(late.stored_json())),
        )
        report = await build.report(sources, MARCH, build.Scope(None), NOW)
        assert report.anomalies.total == 30  # not the uncommitted one
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert (await build.report(sources, MARCH, build.Scope(None), NOW)).anomalies.total == 31
    assert sources.store.get(late.id) is not None  # the store's own connection untouched


async def test_without_influxdb_the_problem_has_a_code_and_chinese_words(
    sources: build.Sources, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.toml"
    token = "chief-token-0123456789"
    accounts.write_text(
        accounts_toml({"chief": ("admin", {"all_regions": True}, token)}), encoding="utf-8"
    )
    app = create_app(
        store=sources.store,
        regime=sources.regime,
        registry=lambda: REGISTRY,
        status=RegistryStatus(lambda: REGISTRY),
        accounts=Accounts(accounts),
        clock=lambda: NOW,
        cases=sources.cases,
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as api:
        body = (await api.get("/api/v1/reports/monthly?month=2026-03", headers=headers)).json()
        assert body["problems"] == [
            {
                "code": "influx_not_configured",
                "message": "InfluxDB is not configured: no transmission rates, compliance unknown",
                "detail": None,
            }
        ]
        assert body["transmission"] is None
        zh = await api.get("/api/v1/reports/monthly?month=2026-03&format=csv", headers=headers)
        en = await api.get(
            "/api/v1/reports/monthly?month=2026-03&format=csv&lang=en", headers=headers
        )
    rows = list(csv.reader(io.StringIO(zh.content.decode("utf-8-sig"))))
    assert rows[-2:] == [["说明"], [problems.TEXT["influx_not_configured"][0]]]
    english = list(csv.reader(io.StringIO(en.content.decode("utf-8-sig"))))
    assert english[-1] == [body["problems"][0]["message"]]
