"""The printable report page in a real headless Chromium against a real HTTP server: the
simulated month's tables in Chinese with the numbers the stores hold, the feedback for an
admin, the print layout (A4, no controls), and what could not be read said in Chinese."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit import localstack
from gateway.accounts import Accounts
from gateway.api import RegistryStatus, create_app
from gateway.api.server import ApiServer
from gateway.reports import problems
from tests.api.conftest import accounts_toml
from tests.browser import Page, browser
from tests.reports.month import Month
from tests.reports.test_month import ACCOUNTS, NOW, app_for, direct

CHIEF = ACCOUNTS["chief"][2]


@pytest.fixture
async def server(
    month: Month, influx: localstack.ManagedProcess, tmp_path: Path
) -> AsyncIterator[str]:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    api = ApiServer(app_for(month, influx.url, path), "127.0.0.1:0")
    await api.start()
    try:
        yield f"http://127.0.0.1:{api.port}"
    finally:
        await api.close()


async def cells(page: Page, table: str, key: str) -> list[str]:
    found = await page.eval(
        f"[...document.querySelectorAll('#{table} tr[data-key=\"{key}\"] td')]"
        ".map(td => td.textContent)"
    )
    assert isinstance(found, list)
    return [str(c) for c in found]


async def test_the_printable_month_shows_the_stores_numbers_in_chinese(
    server: str, month: Month, tmp_path: Path
) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.get(
            f"{server}/api/v1/reports/monthly?month=2026-03",
            headers={"Authorization": f"Bearer {CHIEF}"},
        )
        report: dict[str, Any] = reply.json()
        index = (await client.get(f"{server}/")).text
    assert 'href="/report"' in index and ">报表<" in index  # the main page links to it
    expected = direct(month)
    async with browser(tmp_path / "chromium") as page:
        await page.goto(f"{server}/report?kind=monthly&month=2026-03#token={CHIEF}")
        await page.wait("document.body.dataset.ready === 'monthly'")
        assert "token" not in str(await page.eval("location.href"))  # kept, not shown
        text = str(await page.eval("document.body.innerText"))
        assert "污染源在线监控月报(2026-03)" in text and "所有时间均为北京时间" in text
        headings = await page.eval("[...document.querySelectorAll('h2')].map(h => h.textContent)")
        assert "二、异常按类型" in headings and "九、核实结论反馈(本月立案的案件)" in headings
        assert all(not re.search(r"[A-Za-z]", h) for h in headings), headings

        over = expected["by_type"]["over_limit"]
        assert (await cells(page, "by-type", "over_limit"))[:2] == ["超标排放", str(over)]
        total = await cells(page, "by-type", "total")
        assert total[:2] == ["合计", str(expected["total"])]
        assert (await cells(page, "summary", "all"))[0] == str(report["anomalies"]["total"])
        handling = await cells(page, "timeliness", "cases")
        assert handling[:3] == [
            str(expected["opened"]),
            str(expected["signed"]),
            str(expected["closed"]),
        ]
        assert handling[5] == str(expected["overdue"])
        below = await cells(page, "below", "MNE2DW2")
        assert below[0] == "西城造纸(E2)" and below[3:] == ["648", "744", "87.1%"]
        assert (
            await page.eval("document.querySelector('#below tr[data-key=\"MNE1DW1\"]')") is None
        )  # 741 of 744 hours is above 90 %
        statuses = await page.eval(
            "[...document.querySelectorAll('#compliance tbody tr td:nth-child(5)')]"
            ".map(td => td.textContent)"
        )
        assert sorted(statuses) == sorted(["未落实", "已落实", "已落实", "无法核实(无数据)"])
        verdict = await cells(page, "by-verdict", "false_alarm")
        assert verdict == ["误报", str(expected["by_verdict"]["false_alarm"])]
        row = await cells(page, "feedback", "over_limit")
        assert row[0] == "超标排放"
        assert await page.eval("!!document.getElementById('feedback-region')")

        # print: A4, the controls hidden, the tables kept
        await page.call("Emulation.setEmulatedMedia", media="print")
        hidden = await page.eval(
            "getComputedStyle(document.querySelector('header')).display === 'none'"
            " && getComputedStyle(document.getElementById('message')).display === 'none'"
        )
        assert hidden
        assert (
            await page.eval("getComputedStyle(document.getElementById('by-type')).display")
            == "table"
        )
        pdf = await page.call("Page.printToPDF", preferCSSPageSize=True, printBackground=False)
        raw = base64.b64decode(pdf["data"])
        assert raw.startswith(b"%PDF")
        boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", raw)
        assert boxes and all(
            abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes
        ), boxes[:3]
        assert len(boxes) >= 2  # more than one page: the feedback starts a page of its own
        assert page.exceptions == []


async def test_what_could_not_be_read_is_said_in_chinese(month: Month, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    app = create_app(  # no InfluxDB
        store=month.store,
        regime=month.regime,
        registry=lambda: month.registry,
        status=RegistryStatus(lambda: month.registry),
        accounts=Accounts(path),
        clock=lambda: NOW,
        cases=month.cases,
    )
    api = ApiServer(app, "127.0.0.1:0")
    await api.start()
    try:
        async with browser(tmp_path / "chromium") as page:
            await page.goto(
                f"http://127.0.0.1:{api.port}/report?kind=daily&day=2026-03-10#token={CHIEF}"
            )
            await page.wait("document.body.dataset.ready === 'daily'")
            said = str(await page.eval("document.getElementById('problems').textContent"))
            assert said == "说明:" + problems.TEXT["influx_not_configured"][0]
            text = str(await page.eval("document.body.innerText"))
            assert "not configured" not in text and "InfluxDB is" not in text
            assert page.exceptions == []
    finally:
        await api.close()
