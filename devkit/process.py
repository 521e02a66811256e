"""A gateway run as a separate process, as the benchmark and the fuzzer drive it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


def start_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`pollution-gateway run` on `config`, its output appended to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int | None:
    """SIGTERM, then SIGKILL past `timeout_s`; the exit status (None if killed)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


async def wait_port(port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
    """Until something accepts connections on `port`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port}") from None
            await asyncio.sleep(0.05)


def metric(port: int, name: str) -> float:
    """The sum of a metric's samples (any labels) on a gateway's /metrics; NaN if absent."""
    total, seen = 0.0, False
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                seen = True
    return total if seen else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
