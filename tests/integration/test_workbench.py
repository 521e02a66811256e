"""The officers' page in a real headless Chromium against a running gateway: in Chinese, a
county officer sees only the county's enterprises and anomalies, the list exports as a CSV that
Excel opens, and the live list resumes its stream after the server drops it without losing the
event that came meanwhile."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.accounts import token_hash
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.browser import Page, browser
from tests.conftest import write_config
from tests.frames import qn_for, upload

REGISTRY = """
[[regions]]
id = "320000"
name = "江苏省"
[[regions]]
id = "320500"
name = "苏州市"
parent = "320000"
[[regions]]
id = "320505"
name = "虎丘区"
parent = "320500"
[[regions]]
id = "320506"
name = "吴中区"
parent = "320500"

[[enterprises]]
id = "E1"
name = "虎丘化工"
region = "320505"
  [[enterprises.outlets]]
  id = "DW001"
  mn = "MNHQ0000000001"
  password = "123456"
  [enterprises.outlets.pollutants]
  w01018 = { limit = 50, unit = "mg/L" }

[[enterprises]]
id = "E2"
name = "吴中钢铁"
region = "320506"
  [[enterprises.outlets]]
  id = "DA001"
  mn = "MNWZ0000000002"
  password = "123456"
"""
OFFICER, ADMIN = "officer-token-0123456789", "admin-token-0123456789"
ACCOUNTS = f"""
[[accounts]]
name = "hq.officer"
display_name = "虎丘区执法大队"
role = "officer"
regions = ["320505"]
token_sha256 = "{token_hash(OFFICER)}"

[[accounts]]
name = "bureau.admin"
role = "admin"
all_regions = true
token_sha256 = "{token_hash(ADMIN)}"
"""
ALLOWED_LATIN = {"CSV", "JSON", "UTC", "COD", "TOC", "BOD"}


def latin_words(text: str) -> set[str]:
    """Latin words of visible text, other than codes and ids (which hold digits) and units."""
    words = set()
    for token in re.findall(r"[A-Za-z0-9_.:/\-]+", text):
        if any(c.isdigit() for c in token) or token in ALLOWED_LATIN:
            continue
        for word in re.findall(r"[A-Za-z]{2,}", token):
            if word not in {"mg", "kW", "kWh", "Nm", "pH"}:
                words.add(word)
    return words


async def visible_text(page: Page) -> str:
    return str(await page.eval("document.body.innerText"))


@pytest.fixture
async def workbench(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    influx: localstack.ManagedProcess,
    database: str,
) -> AsyncIterator[Gateway]:
    monkeypatch.delenv("TEST_GATEWAY_API_TOKENS", raising=False)
    directory = tmp_path / "gw"
    path = write_config(
        directory,
        influx.url,
        database,
        registry=REGISTRY,
        api={"accounts_file": "accounts.toml", "stream_max_s": 1.0},
    )
    (directory / "accounts.toml").write_text(ACCOUNTS, encoding="utf-8")
    gw = Gateway(load_config(path))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.shutdown()


async def refused(gw: Gateway, mn: str) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    await dev.send(upload(mn=mn, pw="wrong", qn=qn_for(900)))
    await asyncio.sleep(0.3)
    await dev.close()


async def over_limit(gw: Gateway) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    for i, value in enumerate([30.0, 90.0, 20.0]):
        await dev.send(
            upload(
                mn="MNHQ0000000001",
                qn=qn_for(800 + i),
                data_time=datetime(2026, 4, 8, 6 + i),
                values={"w01018": value},
            )
        )
        await dev.read_frame()
    await dev.close()


async def test_a_county_officer_works_in_chinese_within_the_county(
    workbench: Gateway, tmp_path: Path
) -> None:
    gw = workbench
    assert gw.regime is not None and gw.regime.within is not None  # the registry's hierarchy
    assert gw.regime.within("320505", ["320500"]) and not gw.regime.within("320505", ["320506"])
    await refused(gw, "MNHQ0000000001")
    await refused(gw, "MNWZ0000000002")
    assert gw.api is not None and gw.anomalies is not None
    base = f"http://127.0.0.1:{gw.api.port}/"
    async with browser(tmp_path / "officer", downloads=tmp_path / "downloads") as page:
        await page.goto(base + f"#token={OFFICER}")
        await page.wait("document.querySelectorAll('#list .anomaly').length >= 1")
        await page.wait("document.getElementById('live').textContent.includes('实时')")
        text = await visible_text(page)
        assert "虎丘化工" in text and "吴中钢铁" not in text and "MNWZ" not in text
        assert "时间均为北京时间" in text and "认证失败" in text
        assert latin_words(text) == set(), text
        regions = await page.eval(
            "[...document.getElementById('region').options].map(o => o.text.trim())"
        )
        assert "虎丘区" in regions and "吴中区" not in regions
        enterprises = await page.eval(
            "[...document.getElementById('enterprise').options].map(o => o.value)"
        )
        assert enterprises == ["", "E1"]

        # export: the file downloads and opens as UTF-8 CSV with Chinese headers, E1 only
        await page.eval("document.getElementById('export').click()")
        downloads = tmp_path / "downloads"
        for _ in range(100):
            done = [p for p in downloads.glob("*.csv") if not p.name.endswith(".crdownload")]
            if done:
                break
            await asyncio.sleep(0.1)
        assert done, "no CSV was downloaded"
        raw = done[0].read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"))))
        assert any("类型" in h for h in rows[0]) and len(rows) == 2
        assert "E1" in rows[1] and not any("E2" in cell for cell in rows[1])

        # an anomaly opened: its evidence as a labelled table in Chinese, the raw JSON behind
        await page.eval("document.querySelector('#list .anomaly').click()")
        await page.wait("!!document.querySelector('.expanded .evidence')")
        heads = await page.eval(
            "[...document.querySelectorAll('.expanded .evidence th')].map(th => th.textContent)"
        )
        assert heads and all(not re.search(r"[a-z]{3}", h) for h in heads), heads
        assert "原始数据(JSON)" in await visible_text(page)
        assert page.exceptions == []


async def test_the_live_list_resumes_after_a_drop_without_losing_an_event(
    workbench: Gateway, tmp_path: Path
) -> None:
    gw = workbench
    await refused(gw, "MNHQ0000000001")
    assert gw.api is not None and gw.anomalies is not None
    base = f"http://127.0.0.1:{gw.api.port}/"
    async with browser(tmp_path / "resume") as page:
        await page.call("Fetch.enable", patterns=[{"urlPattern": "*/api/v1/anomalies/stream*"}])
        await page.goto(base + f"#token={ADMIN}")
        first = await page.event("Fetch.requestPaused")
        await page.call("Fetch.continueRequest", requestId=first["requestId"])
        await page.wait("document.querySelectorAll('#list .anomaly').length >= 1")
        # the server ends the stream after 1 s; hold the page's reconnection, and meanwhile
        # an over-limit anomaly opens
        again = await page.event("Fetch.requestPaused")
        before = gw.anomalies.last_seq()
        await over_limit(gw)
        for _ in range(100):
            if gw.anomalies.query(type_="over_limit")[1]:
                break
            await asyncio.sleep(0.1)
        assert gw.anomalies.query(type_="over_limit")[1] == 1
        # an alarm needs action: the daemon opened its case (待签收), a warning none
        alarm = gw.anomalies.query(type_="over_limit")[0][0]
        assert gw.cases is not None
        case = gw.cases.case_of(alarm.id)
        assert case is not None and case.state == "new"
        refused_warning = gw.anomalies.query(type_="auth_failure")[0][0]
        assert gw.cases.case_of(refused_warning.id) is None
        resumed_from = {k.lower(): v for k, v in again["request"]["headers"].items()}
        assert int(resumed_from["last-event-id"]) >= 1
        assert int(resumed_from["last-event-id"]) <= before
        await page.call("Fetch.continueRequest", requestId=again["requestId"])
        await page.call("Fetch.disable")
        await page.wait(
            "[...document.querySelectorAll('#list .anomaly')]"
            ".some(e => e.dataset.type === 'over_limit')"
        )
        text = await visible_text(page)
        assert "化学需氧量" in text
        assert page.exceptions == []


async def test_an_officer_signs_for_a_case_from_the_opened_anomaly(
    workbench: Gateway, tmp_path: Path
) -> None:
    gw = workbench
    assert gw.api is not None and gw.anomalies is not None and gw.cases is not None
    await over_limit(gw)
    for _ in range(100):
        found = gw.anomalies.query(type_="over_limit")[0]
        if found and gw.cases.case_of(found[0].id) is not None:
            break
        await asyncio.sleep(0.1)
    alarm = gw.anomalies.query(type_="over_limit")[0][0]
    case = gw.cases.case_of(alarm.id)
    assert case is not None and case.state == "new"
    base = f"http://127.0.0.1:{gw.api.port}/"
    panel = f"document.querySelector('.expanded .case-panel[data-anomaly=\"{alarm.id}\"]')"
    async with browser(tmp_path / "case") as page:
        await page.goto(base + f"#token={OFFICER}&anomaly={alarm.id}")
        await page.wait(f"{panel}?.dataset.state === 'new'")
        assert "处置" in await page.eval(f"{panel}.innerText")
        buttons = await page.eval(
            f"[...{panel}.querySelectorAll('button')].map(b => b.textContent)"
        )
        assert "签收" in buttons and "销号" not in buttons, buttons
        await page.eval(f"{panel}.querySelector('button[data-action=sign]').click()")
        await page.wait(f"{panel}?.querySelector('.case-state')?.textContent === '已签收'")
        signed = gw.cases.case_of(alarm.id)
        assert signed is not None and signed.state == "signed"
        assert signed.signed_by == "hq.officer"
        history = await page.eval(
            f"[...{panel}.querySelectorAll('.case-history li')].map(li => li.textContent)"
        )
        assert len(history) == 2 and "立案" in history[0] and "系统" in history[0], history
        assert "hq.officer" in history[1] and "签收" in history[1], history
        text = str(await page.eval(f"{panel}.innerText"))
        assert "已签收" in text and "分派核查" in text  # the next step is offered
        assert latin_words(text.replace("hq.officer", "")) == set(), text  # the account's id
        assert page.exceptions == []
