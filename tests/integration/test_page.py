"""The page for people, in a real headless Chromium against a running gateway: the anomaly
list fills, a filter works, an anomaly opened by its link shows the chart of its values, and
screenshots are kept as test artefacts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.supervisor import Gateway
from tests.conftest import influx_rows
from tests.frames import qn_for, upload

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium(url: str, profile: Path, *extra: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Debian's chromium is not installed (scripts/setup.sh installs it)")
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=4000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "TZ": "Asia/Shanghai"},  # the officers' local time
    )
    return result.stdout


def rendered(dom: str) -> str:
    """The dumped DOM without the page's script (whose text names classes and messages)."""
    return re.sub(r"<script>.*?</script>", "", dom, flags=re.S)


HOURLY = [31.0, 38.0, 44.0, 90.0, 72.0, 20.0, 24.0]  # w01018 from 06:00, limit 50


async def test_page_lists_anomalies_filters_and_renders(
    gateway_config: object,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "page-token:viewer")
    gw = Gateway(gateway_config())  # type: ignore[operator]
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        for i, value in enumerate(HOURLY):
            await dev.send(
                upload(
                    qn=qn_for(700 + i),
                    data_time=datetime(2026, 4, 8, 6 + i),
                    values={"w01018": value},
                )
            )
            await dev.read_frame()
        await dev.send(upload(pw="wrong", qn=qn_for(710)))
        await asyncio.sleep(0.5)
        await dev.close()
        assert gw.api is not None
        base = f"http://127.0.0.1:{gw.api.port}/"
        everything = rendered(
            await asyncio.to_thread(
                chromium, base + "#token=page-token", tmp_path / "p1", "--dump-dom"
            )
        )
        assert "化学需氧量(w01018)小时均值超标" in everything and "排放限值50 mg/L" in everything
        assert "访问密码错误" in everything
        filtered = rendered(
            await asyncio.to_thread(
                chromium, base + "?type=over_limit#token=page-token", tmp_path / "p2", "--dump-dom"
            )
        )
        assert "排放限值50 mg/L" in filtered and "访问密码错误" not in filtered
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "page.png"
        shot.unlink(missing_ok=True)
        await asyncio.to_thread(
            chromium,
            base + "?enterprise=E1#token=page-token",
            tmp_path / "p3",
            f"--screenshot={shot}",
            "--window-size=1280,800",
        )
        assert shot.exists() and shot.stat().st_size > 20_000

        assert gw.anomalies is not None
        over = gw.anomalies.query(type_="over_limit")[0][0].id
        refused = gw.anomalies.query(type_="auth_failure")[0][0].id
        for _ in range(100):
            if len(influx_rows(influx.url, database, "SELECT avg FROM emission")) == 7:
                break
            await asyncio.sleep(0.1)
        opened = rendered(
            await asyncio.to_thread(
                chromium, base + f"#token=page-token&anomaly={over}", tmp_path / "p4", "--dump-dom"
            )
        )
        assert 'class="chart-svg"' in opened and 'class="anomaly-window"' in opened
        assert opened.count('class="series"') == 1 and 'class="limit"' in opened
        assert opened.count("<circle") == len(HOURLY)
        assert "DW001 化学需氧量(w01018) 小时均值 (mg/L)" in opened and "限值 50 mg/L" in opened
        nothing = rendered(
            await asyncio.to_thread(
                chromium, base + f"#anomaly={refused}", tmp_path / "p4", "--dump-dom"
            )
        )  # the token is kept from the previous visit
        assert "该类型异常没有可绘制的数值" in nothing and "chart-svg" not in nothing
        chart = ARTIFACTS / "page-chart.png"
        chart.unlink(missing_ok=True)
        await asyncio.to_thread(
            chromium,
            base + f"?enterprise=E1#token=page-token&anomaly={over}",
            tmp_path / "p5",
            f"--screenshot={chart}",
            "--window-size=1280,800",
        )
        assert chart.exists() and chart.stat().st_size > 20_000
    finally:
        await gw.shutdown()
