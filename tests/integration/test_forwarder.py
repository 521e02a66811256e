"""Forwarder behaviour: poison lines against a real InfluxDB; Retry-After and 413 against a
small real HTTP server that answers like an overloaded InfluxDB (a transport-level stand-in)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from devkit import localstack
from gateway import metrics
from gateway.influx.v1 import InfluxV1Sink
from gateway.ingest.forwarder import Forwarder
from gateway.ingest.spool import Spool
from tests.conftest import influx_rows


async def run_until_drained(forwarder: Forwarder, spool: Spool, timeout_s: float = 20) -> None:
    task = asyncio.create_task(forwarder.run())
    deadline = time.monotonic() + timeout_s
    while spool.depth_bytes and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    forwarder.stop()
    await task


async def test_poison_line_is_set_aside_and_the_rest_written(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    localstack.create_database(influx.url, database)
    spool = Spool(tmp_path / "spool")
    await spool.open()
    good = [f"m,k=a v={i}.0 {1_700_000_000_000_000_000 + i}\n".encode() for i in range(50)]
    bad = b'm,k=a v="text" 1700000000000000999\n'  # field type conflict
    for line in good[:25]:
        await spool.append(line)
    await spool.append(bad)
    for line in good[25:]:
        await spool.append(line)
    sink = InfluxV1Sink(influx.url, database)
    await sink.start()
    poison = tmp_path / "poison.lp"
    fwd = Forwarder(spool, sink, batch_lines=1000, flush_interval_s=0.05, poison_path=poison)
    await run_until_drained(fwd, spool)
    await sink.close()
    await spool.close()
    rows = influx_rows(influx.url, database, "SELECT count(v) FROM m")
    assert rows[0]["count"] == 50
    text = poison.read_bytes()
    assert bad in text and text.count(b"\n") == 2  # reason comment + the line


async def test_the_poison_file_is_bounded_and_the_rest_is_still_written(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    localstack.create_database(influx.url, database)
    spool = Spool(tmp_path / "spool")
    await spool.open()
    for i in range(40):  # 20 lines InfluxDB refuses among 20 it takes
        await spool.append(f"m,k=a v={i}.0 {1_700_000_000_000_000_000 + i}\n".encode())
        await spool.append(f'm,k=a v="t{i}" {1_700_000_000_000_001_000 + i}\n'.encode())
    sink = InfluxV1Sink(influx.url, database)
    await sink.start()
    poison = tmp_path / "poison.lp"
    fwd = Forwarder(
        spool,
        sink,
        batch_lines=1000,
        flush_interval_s=0.05,
        poison_path=poison,
        poison_max_bytes=2000,
    )
    dropped = metrics.POISON_DROPPED._value.get()
    await run_until_drained(fwd, spool)
    await sink.close()
    await spool.close()
    assert influx_rows(influx.url, database, "SELECT count(v) FROM m")[0]["count"] == 40
    kept = poison.read_bytes().count(b"\nm,k=a")
    assert poison.stat().st_size <= 2000 and 0 < kept < 40
    assert metrics.POISON_DROPPED._value.get() - dropped == 40 - kept


class FlakyInflux:
    """Answers 429 with Retry-After once, 413 for bodies over `max_lines`, else 204."""

    def __init__(self, max_lines: int) -> None:
        self.max_lines = max_lines
        self.calls: list[tuple[float, int, int]] = []  # (time, lines, status)
        self.stored: list[bytes] = []

    async def write(self, request: web.Request) -> web.Response:
        assert request.headers.get("Content-Encoding") == "gzip"
        body = await request.read()  # aiohttp has already gunzipped it
        lines = body.count(b"\n")
        if not self.calls:
            status = 429
        elif lines > self.max_lines:
            status = 413
        else:
            status = 204
            self.stored += body.splitlines(keepends=True)
        self.calls.append((time.monotonic(), lines, status))
        headers = {"Retry-After": "1"} if status == 429 else {}
        return web.Response(status=status, headers=headers)


async def test_retry_after_is_honoured_and_413_splits(tmp_path: Path) -> None:
    flaky = FlakyInflux(max_lines=30)
    app = web.Application()
    app.router.add_post("/write", flaky.write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = localstack.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    spool = Spool(tmp_path / "spool")
    await spool.open()
    lines = [f"m v={i}i {i}\n".encode() for i in range(100)]
    await asyncio.gather(*(spool.append(line) for line in lines))
    sink = InfluxV1Sink(f"http://127.0.0.1:{port}", "db")
    await sink.start()
    fwd = Forwarder(
        spool,
        sink,
        batch_lines=100,
        flush_interval_s=0.01,
        retry_min_s=0.01,
        poison_path=tmp_path / "poison.lp",
    )
    await run_until_drained(fwd, spool)
    await sink.close()
    await spool.close()
    await runner.cleanup()
    first, second = flaky.calls[0], flaky.calls[1]
    assert first[2] == 429 and second[0] - first[0] >= 0.95  # waited the Retry-After second
    assert any(status == 413 for _, _, status in flaky.calls)
    assert all(n <= 30 for _, n, status in flaky.calls if status == 204)
    assert flaky.stored == lines  # every line once, in order
    assert not (tmp_path / "poison.lp").exists()
