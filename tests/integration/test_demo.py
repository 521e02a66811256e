"""The demo command end to end (shortened): its own stack, the gateway and the simulator, and
every scripted anomaly type on the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_shows_every_scripted_anomaly_type(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--exit",
            "--enterprises",
            "2",
            "--step-s",
            "0",
            "--api-port",
            "0",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every scripted anomaly type appeared" in result.stdout
    for kind in (
        "over_limit",
        "data_gap",
        "treatment_not_running",
        "production_during_shutdown",
        "banned_vehicle_entry",
        "auth_failure",
    ):
        assert (
            f"] {'alarm' if kind not in ('data_gap', 'auth_failure') else 'warning'}"
            in result.stdout
        )
        assert kind in result.stdout
    assert "page: http://127.0.0.1:" in result.stdout
