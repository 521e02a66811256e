"""`pollution-gateway cluster-demo --simulate --exit` as a process: three NATS servers,
PostgreSQL, InfluxDB, Mosquitto, HAProxy (send-proxy-v2) in front of two ingestion nodes, two
writers and two rule workers on loopback; the simulator's scripted day played through them.

The rule workers raise every scripted anomaly type: the printed types are exactly the scripted
ones, and both ingestion nodes took devices' PROXY v2 headers from HAProxy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from devkit import localstack
from devkit.simulator import SCRIPTED_TYPES

ROOT = Path(__file__).resolve().parents[2]
EVENT = re.compile(r"^\[\s*(opened|updated|closed)\]\s+\w+\s+(\w+)\s+(SIM0|unregistered)\s")
CARRIED = re.compile(r"HAProxy carried (\d+) device connections .*: ingest-1 (\d+), ingest-2 (\d+)")


def test_cluster_demo_plays_the_scripted_day_through_haproxy(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "gateway.cli",
        "cluster-demo",
        "--simulate",
        "--exit",
        "--speedup",
        "0",
        "--enterprises",
        "1",
        "--workdir",
        str(tmp_path / "cluster"),
        "--hj212-port",
        str(localstack.free_port()),
        "--api-port",
        str(localstack.free_port()),
    ]
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )
    lines = [part.removeprefix("\033[K") for part in done.stdout.replace("\r", "\n").split("\n")]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "every scripted anomaly type appeared" in lines
    types = {m.group(2) for line in lines if (m := EVENT.match(line))}
    assert types == set(SCRIPTED_TYPES)
    (carried,) = [m for line in lines if (m := CARRIED.match(line))]
    total, first, second = (int(g) for g in carried.groups())
    assert first > 0 and second > 0 and total == first + second
