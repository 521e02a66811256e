"""A credential flood against the running gateway, over real sockets, beside good devices."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

import adapters.hj212.handler as handler_module
from adapters.hj212.builder import build_encrypted_frame
from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.conftest import wait_rows, write_config
from tests.frames import qn_for, upload

GOOD = [f"2304028100300{k}" for k in range(1, 6)]
HOURS = 24
KEYED = "010000A8900016F000169DC0"  # encrypts its CP area
SCANNER, IMPOSTOR, WRONG_KEY = "127.0.0.2", "127.0.0.3", "127.0.0.4"  # the good: 127.0.0.1

REGISTRY = (
    '[[enterprises]]\nid = "E1"\nname = "Test plant"\n'
    + "".join(
        f'\n  [[enterprises.outlets]]\n  id = "DW00{k}"\n  mn = "{mn}"\n  password = "123456"\n'
        for k, mn in enumerate(GOOD, start=1)
    )
    + f'\n  [[enterprises.outlets]]\n  id = "DA001"\n  mn = "{KEYED}"\n  password = "123456"\n'
    + '  sm4_key = "0000000000000000"\n'
)


class Lines:
    """Stands in for the HJ 212 handler's logger: each call is one log line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    info = warning


def rejected(reason: str) -> float:
    labels = {"adapter": "hj212", "reason": reason}
    return METRICS.get_sample_value("frames_rejected_total", labels) or 0.0


async def good_device(port: int, k: int) -> int:
    """One registered logger sending a day of hourly records; the acks it got for them."""
    dev = await DeviceClient.connect("127.0.0.1", port)
    acks = 0
    for hour in range(HOURS):
        qn = qn_for(1000 * k + hour)
        values = {"w01018": 10.0 + k + hour / 10}
        await dev.send(
            upload(mn=GOOD[k], qn=qn, data_time=datetime(2026, 4, 10, hour), values=values)
        )
        ack = await dev.read_frame()
        acks += (ack.cn, ack.qn, ack.mn) == ("9014", qn, GOOD[k])
        await asyncio.sleep(0.03)  # a day of records over about the impostor's time
    await dev.close()
    return acks


async def scanner(port: int) -> asyncio.StreamWriter:
    """3,000 frames under made-up MNs over one connection, in bursts of 100."""
    rng = random.Random(212)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(SCANNER, 0))
    for burst in range(30):
        frames = [
            upload(mn=f"{rng.randrange(10**14):014d}{rng.randrange(10**10):010d}", qn=qn_for(i))
            for i in range(100 * burst, 100 * burst + 100)
        ]
        writer.write(b"".join(frames))
        await writer.drain()
        await asyncio.sleep(0.01)
    return writer


async def impostor(port: int) -> asyncio.StreamWriter:
    """300 frames under the first good device's MN with a wrong password, while it sends."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(IMPOSTOR, 0))
    for i in range(300):
        writer.write(upload(mn=GOOD[0], pw="654321", qn=qn_for(5000 + i)))
        await writer.drain()
        await asyncio.sleep(0.002)
    return writer


async def wrong_key(port: int) -> asyncio.StreamWriter:
    """50 uploads under the keyed device's MN, encrypted with another key."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(WRONG_KEY, 0))
    cp = "DataTime=20260410080000;" + ";".join(
        f"a{n:05d}-Avg={n}.5,a{n:05d}-Flag=N" for n in range(20)
    )
    for i in range(50):
        head: list[tuple[str, str | int]] = [
            ("QN", qn_for(8000 + i)),
            ("ST", "22"),
            ("CN", "2061"),
            ("PW", "123456"),
            ("MN", KEYED),
            ("Flag", 9),
        ]
        writer.write(build_encrypted_frame(head, cp, b"not the real key"))
        await writer.drain()
        await asyncio.sleep(0.01)
    return writer


async def test_a_credential_flood_gives_one_anomaly_per_source_and_few_log_lines(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = Lines()
    monkeypatch.setattr(handler_module, "log", lines)
    config = load_config(write_config(tmp_path / "gw", influx.url, database, registry=REGISTRY))
    reasons = ("unknown_mn", "bad_password", "decrypt")
    before = {reason: rejected(reason) for reason in reasons}
    expected = {"unknown_mn": 3000, "bad_password": 300, "decrypt": 50}
    gw = Gateway(config)
    await gw.start()
    try:
        port = gw.hj212.port
        *acks, flood, fake, keyed = await asyncio.gather(
            *(good_device(port, k) for k in range(5)),
            scanner(port),
            impostor(port),
            wrong_key(port),
        )
        assert acks == [HOURS] * 5

        def counted() -> dict[str, float]:
            return {reason: rejected(reason) - before[reason] for reason in reasons}

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and counted() != expected:
            await asyncio.sleep(0.05)
        assert counted() == expected

        store = gw.anomalies
        assert store is not None and gw.rules is not None
        unregistered, total = store.query(type_="unregistered_device")
        assert total == 1 and unregistered[0].subject == f"address:{SCANNER}"
        auth, total = store.query(type_="auth_failure")
        assert sorted(a.subject for a in auth) == [f"mn:{KEYED}/decrypt", f"mn:{GOOD[0]}"]
        assert {unregistered[0].state, *(a.state for a in auth)} == {"open"}  # none closed

        # the log: one line per sender address and reason, the rest counted
        refused = [kw for event, kw in lines.lines if event == "frame rejected"]
        assert sorted((kw["reason"], kw["peer"].rpartition(":")[0]) for kw in refused) == [
            ("bad_password", IMPOSTOR),
            ("decrypt", WRONG_KEY),
            ("unknown_mn", SCANNER),
        ]
        assert gw.hj212.handler.limiter.suppressed >= 3347

        # the good devices' data is all in InfluxDB
        rows = await wait_rows(
            influx.url, database, "SELECT avg, mn FROM emission WHERE pollutant = 'w01018'", 120
        )
        assert len(rows) == 5 * HOURS
        assert {mn: sum(r["mn"] == mn for r in rows) for mn in GOOD} == dict.fromkeys(GOOD, HOURS)

        # the quiet window passes: each anomaly closes once, with its counts
        later = datetime.now(UTC) + timedelta(minutes=16)
        gw.rules.clock = lambda: later
        gw.rules.tick()
        (flood_anomaly,), _ = store.query(type_="unregistered_device", state="closed")
        evidence = flood_anomaly.evidence
        assert (evidence["frames"], evidence["distinct_mns"], len(evidence["mns_sample"])) == (
            3000,
            3000,
            20,
        )
        auth, _ = store.query(type_="auth_failure", state="closed")
        found = {a.evidence["reason"]: a.evidence for a in auth}
        assert (found["password"]["frames"], found["password"]["addresses_sample"]) == (
            300,
            [IMPOSTOR],
        )
        assert (found["decrypt"]["frames"], found["decrypt"]["addresses_sample"]) == (
            50,
            [WRONG_KEY],
        )
        kinds = [
            e.event
            for e in store.events_after(0)
            if e.anomaly.type in ("unregistered_device", "auth_failure")
        ]
        assert sorted(kinds) == ["closed"] * 3 + ["opened"] * 3
        for writer in (flood, fake, keyed):
            writer.close()
    finally:
        await gw.shutdown()
