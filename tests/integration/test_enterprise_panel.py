"""The page's enterprise status in a real headless Chromium: the layers of control in force,
the plan measures no device can verify, the heavy-vehicle use from the gate data and the
make-up of staggered production, all in Chinese."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit import localstack
from gateway.accounts import token_hash
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.browser import browser
from tests.conftest import write_config
from tests.integration.test_workbench import latin_words, visible_text

ADMIN = "admin-token-0123456789"
ACCOUNTS = f"""
[[accounts]]
name = "bureau.admin"
role = "admin"
all_regions = true
token_sha256 = "{token_hash(ADMIN)}"
"""


def registry(now: datetime) -> str:
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    return f"""
[[enterprises]]
id = "E1"
name = "水泥一厂"
region = "city-a"
industry = "cement"
  [[enterprises.meters]]
  id = "P1"
  role = "production"
  line = "L1"
  [[enterprises.lines]]
  id = "L1"
  name = "熟料线"
  heating_duty = true
  [[enterprises.lines]]
  id = "L2"
  name = "粉磨线"
  [[enterprises.gates]]
  id = "G1"
  name = "东门"
  [[enterprises.schedules]]
  name = "全年错峰"
  lines = ["L1"]
  stop = true
  from = "01-01"
  to = "12-31"
  make_up_days = 30
  [enterprises.plans.event]
  stop_lines = ["L2"]

[[control_periods]]
name = "运动会"
layer = "event"
regions = ["city-a"]
windows = [["{start}", "{end}"]]
"""


@pytest.fixture
async def gateway(
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
        registry=registry(datetime.now(UTC)),
        api={"accounts_file": "accounts.toml", "stream_max_s": 1.0},
    )
    (directory / "accounts.toml").write_text(ACCOUNTS, encoding="utf-8")
    gw = Gateway(load_config(path))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.shutdown()


async def test_the_enterprise_panel_shows_layers_plan_checks_and_transport_in_chinese(
    gateway: Gateway, tmp_path: Path
) -> None:
    assert gateway.api is not None
    async with browser(tmp_path / "profile") as page:
        await page.goto(f"http://127.0.0.1:{gateway.api.port}/#token={ADMIN}")
        await page.wait("document.getElementById('enterprise').options.length >= 2")
        await page.eval(
            "(() => { const s = document.getElementById('enterprise'); s.value = 'E1';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await page.wait("document.querySelectorAll('#status-body dt').length > 0")
        await page.wait("document.getElementById('status-body').innerText.includes('错峰补齐')")
        rows = await page.eval(
            "Object.fromEntries([...document.querySelectorAll('#status-body dt')]"
            ".map(dt => [dt.textContent, dt.nextElementSibling.textContent]))"
        )
        assert rows["管控层级"] == "赛时管控"
        # the event plan stops L2, which no production meter measures
        assert "L2" in rows["方案无法核查项"], rows
        assert rows["用车大户"].startswith("否(") and "重型车进出0次" in rows["用车大户"], rows
        assert rows["本月清洁运输比例"] == "—"
        assert rows["错峰补齐"] == "L1(全年错峰):期内生产0天,已补0天,尚欠0天", rows
        text = await visible_text(page)
        assert latin_words(text) == set(), text
        assert page.exceptions == []
