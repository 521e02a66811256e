"""SIGKILL of a gateway process under load: no point stored (in InfluxDB or in the spool) lacks
its frame's archived record, every acknowledged frame is archived, and the archive's chain
checks after the restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.archive.files import day_files
from gateway.archive.record import decode
from gateway.ingest.segments import RECORD_HEADER, segment_start
from tests.conftest import influx_rows, write_config
from tests.integration.test_faults import connect_when_up, frame_for, start_gateway_process

ROOT = Path(__file__).resolve().parents[2]
_AVG = re.compile(rb"avg=([0-9.]+)")
_RAW_AVG = re.compile(rb"w01018-Avg=([0-9.]+)")


def spooled_values(spool: Path) -> set[int]:
    """The `avg` of every whole record left in the spool's segments."""
    values: set[int] = set()
    for path in sorted(spool.glob("seg-*.log")):
        data = path.read_bytes()
        pos = segment_start(path, data[:16]) or 0
        while pos + RECORD_HEADER.size <= len(data):
            length, _ = RECORD_HEADER.unpack_from(data, pos)
            body = data[pos + RECORD_HEADER.size : pos + RECORD_HEADER.size + length]
            if len(body) < length:
                break
            values |= {int(float(v)) for v in _AVG.findall(body)}
            pos += RECORD_HEADER.size + length
    return values


def archived_values(archive: Path) -> set[int]:
    """The value of every accepted frame archived (whole lines only)."""
    values: set[int] = set()
    for _, path in day_files(archive):
        for line in path.read_bytes().splitlines(keepends=True):
            if not line.endswith(b"\n"):
                continue
            rec = decode(line).record
            if rec.verdict == "accepted":
                values |= {int(float(v)) for v in _RAW_AVG.findall(rec.raw)}
    return values


async def test_sigkill_never_leaves_a_stored_point_without_its_archived_frame(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    port = localstack.free_port()
    config = write_config(
        tmp_path / "gw",
        influx.url,
        database,
        hj212={"listen": f"127.0.0.1:{port}"},
        influx={"flush_interval_s": 0.5, "batch_lines": 200},  # some in InfluxDB, some spooled
    )
    log = tmp_path / "gateway.log"
    proc = start_gateway_process(config, log)
    acked: set[int] = set()
    try:
        clients = [await connect_when_up(port) for _ in range(4)]

        async def pump(client: DeviceClient, offset: int) -> None:
            i = offset
            while True:
                await client.send(frame_for(i))
                ack = await client.read_frame(5)
                if ack.cn == "9014":
                    acked.add(i)
                i += 4

        pumps = [asyncio.create_task(pump(c, k)) for k, c in enumerate(clients)]
        await asyncio.sleep(2.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        await asyncio.gather(*pumps, return_exceptions=True)
        for c in clients:
            await c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    data = tmp_path / "gw" / "data"
    rows = await asyncio.to_thread(influx_rows, influx.url, database, "SELECT avg FROM emission")
    in_influx = {int(r["avg"]) for r in rows}
    in_spool = spooled_values(data / "spool")
    archived = archived_values(data / "archive")
    assert len(acked) > 50, f"only {len(acked)} frames acked before the kill"
    assert in_influx and in_spool, "the kill should find points both delivered and spooled"
    assert not (in_influx | in_spool) - archived, "stored points without their archived frame"
    assert not acked - archived
    restarted = start_gateway_process(config, log)
    try:
        await connect_when_up(port)
        out = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "archive",
                "verify",
                "--all",
                "--config",
                str(tmp_path / "gw" / "gateway.toml"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "OK: 1 days" in out.stdout
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0, log.read_text()[-2000:]
