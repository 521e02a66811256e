"""The page for people, in a real headless Chromium against a running gateway: the anomaly
list fills, a filter works, and a screenshot is kept as a test artefact."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from adapters.hj212.device import DeviceClient
from gateway.supervisor import Gateway
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
    )
    return result.stdout


async def test_page_lists_anomalies_filters_and_renders(
    gateway_config: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "page-token:viewer")
    gw = Gateway(gateway_config())  # type: ignore[operator]
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        for i, value in enumerate([90.0, 20.0]):
            await dev.send(
                upload(
                    qn=qn_for(700 + i),
                    data_time=datetime(2026, 4, 8, 9 + i),
                    values={"w01018": value},
                )
            )
            await dev.read_frame()
        await dev.send(upload(pw="wrong", qn=qn_for(710)))
        await asyncio.sleep(0.5)
        await dev.close()
        assert gw.api is not None
        base = f"http://127.0.0.1:{gw.api.port}/"
        everything = await asyncio.to_thread(
            chromium, base + "#token=page-token", tmp_path / "p1", "--dump-dom"
        )
        assert "w01018 at outlet DW001 over its limit of 50" in everything
        assert "wrong password" in everything
        filtered = await asyncio.to_thread(
            chromium, base + "?type=over_limit#token=page-token", tmp_path / "p2", "--dump-dom"
        )
        assert "over its limit of 50" in filtered and "wrong password" not in filtered
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
    finally:
        await gw.shutdown()
