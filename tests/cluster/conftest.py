"""A real 3-node NATS cluster (JetStream on) per test, gateway nodes, and devices that resend.

A missing nats-server is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.hj212.device import DeviceClient
from devkit import localstack
from tests.conftest import influx_rows, write_config
from tests.frames import qn_for, upload

ROOT = Path(__file__).resolve().parents[2]
BASE = datetime(2026, 4, 1, 0, 0)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[list[localstack.NatsServer]]:
    servers = localstack.nats_cluster(tmp_path / "nats")
    try:
        for server in servers:
            server.start()
        localstack.wait_jetstream(servers)
        yield servers
    finally:
        for server in servers:
            server.stop()


def cluster(servers: list[localstack.NatsServer], role: list[str], **extra: Any) -> dict[str, Any]:
    """A `[cluster]` section for a node of the test cluster."""
    return {
        "enabled": True,
        "servers": [s.url for s in servers],
        "role": role,
        "ack_wait_s": 3.0,  # a dead writer's messages come back soon
        **extra,
    }


def node_config(directory: Path, influx_url: str, database: str, section: dict[str, Any]) -> Path:
    """A gateway node's config: rules off (these tests count points), no metrics port."""
    return write_config(
        directory,
        influx_url,
        database,
        cluster=section,
        rules={"enabled": False},
        api={"enabled": False},
    )


def start_node(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def stop_node(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def frame_for(i: int) -> bytes:
    """Upload i: its own minute, one value that encodes i."""
    return upload(
        cn="2051", qn=qn_for(i), data_time=BASE + timedelta(minutes=i), values={"w01018": float(i)}
    )


@dataclass
class Devices:
    """Devices that send uploads one at a time and resend one not acknowledged in time."""

    port: int
    acked: set[int] = field(default_factory=set)
    unanswered: int = 0  # sends without an answer in time (resent)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, count: int, offset: int, step: int) -> None:
        client = await DeviceClient.connect("127.0.0.1", self.port)
        try:
            for i in range(offset, count, step):
                while not self.stop.is_set():
                    await client.send(frame_for(i))
                    if await self._acked(client, i):
                        self.acked.add(i)
                        break
                    self.unanswered += 1
                if self.stop.is_set():
                    return
        finally:
            await client.close()

    async def _acked(self, client: DeviceClient, i: int) -> bool:
        want = qn_for(i)
        try:
            while True:
                reply = await client.read_frame(15)
                if reply.cn == "9014" and reply.qn == want:
                    return True  # older qns: late answers to an earlier send
        except TimeoutError:
            return False


def stored(url: str, db: str) -> list[int]:
    """The values of every emission point in InfluxDB (one per point)."""
    return [int(r["avg"]) for r in influx_rows(url, db, "SELECT avg FROM emission")]


async def wait_stored(url: str, db: str, want: set[int], timeout_s: float = 60) -> list[int]:
    """Poll until every value of `want` is stored (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            values = await asyncio.to_thread(stored, url, db)
        except localstack.LocalStackError:
            values = []
        if want <= set(values) or time.monotonic() > deadline:
            return values
        await asyncio.sleep(0.2)
