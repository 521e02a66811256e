"""The demo command end to end (shortened: no pacing, a 30 s offline threshold): its own stack,
the gateway, the alert and order declared through the API, the simulator, and every scripted
anomaly type printed on the terminal for every enterprise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from devkit.simulator import SCRIPTED_TYPES


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
            "--speedup",
            "0",
            "--offline-after-s",
            "30",
            "--api-port",
            "0",
            "--hj212-port",
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
    out = result.stdout
    assert "every scripted anomaly type appeared" in out
    assert re.search(r"declared through the API: shutdown of line L1", out)
    assert re.search(r"page: http://127\.0\.0\.1:\d+/#token=\S+", out)
    opened = set(re.findall(r"\[ opened\] \w+ +(\w+) +(SIM\d|unregistered)", out))
    for kind in SCRIPTED_TYPES:
        owners = {owner for k, owner in opened if k == kind}
        expected = {"unregistered"} if kind == "unregistered_device" else {"SIM0", "SIM1"}
        assert owners == expected, (kind, owners)
    assert "... scripted day" in out  # the progress line
