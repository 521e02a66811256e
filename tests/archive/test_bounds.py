"""The archive's bounds, with the real writer, spool and handler: a full queue drops refused
frames' records first and then refuses data uploads (nothing stored, nothing answered); at
its size cap the oldest days go (counted, logged, noted); retention; and the spool writes
nothing before the archive's records are fsynced, so an archive that cannot write stops acks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import structlog
from prometheus_client import REGISTRY

from adapters.hj212.config import Hj212Config
from adapters.hj212.handler import FrameHandler
from gateway.archive import ArchiveFull, FrameArchive
from gateway.archive.files import day_files, read_pruned
from gateway.archive.verify import Verified, verify
from gateway.ingest.pipeline import Pipeline
from gateway.ingest.spool import Spool
from tests.archive.kit import DAY1, record, write_days
from tests.handler_kit import NOW, FakeLink, frame, registry

ROOT = Path(__file__).resolve().parents[2]
BASE = datetime(2026, 12, 1, 10, 0)  # Beijing, before the handler's NOW


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_full_queue_drops_refused_records_first_then_refuses_uploads(
    tmp_path: Path,
) -> None:
    """No await between the frames: the writer cannot run, as when the disk stalls."""
    archive = FrameArchive(tmp_path / "archive", queue_bytes=1 << 16, clock=lambda: NOW)
    spool = Spool(tmp_path / "spool")
    await archive.open()
    await spool.open()
    spool.before_write = archive.durable
    handler = FrameHandler(Hj212Config(), registry(), Pipeline(spool), clock=lambda: NOW)
    handler.archive = archive
    link = FakeLink()
    refused_before = sample("archive_dropped_total", reason="queue_half_full_refused")
    bad = frame(pw="wrong-password")
    good = [
        frame(
            qn=f"20261201110000{i:03d}",
            cp=f"DataTime={BASE + timedelta(minutes=i):%Y%m%d%H%M%S};w01018-Avg=40.1,w01018-Flag=N",
        )
        for i in range(400)
    ]
    outcomes: list[str] = []
    for i, raw in enumerate(good):
        assert handler.process(bad, link) is None  # refused: its record is queued or dropped
        try:
            handler.process(raw, link)
            outcomes.append("stored")
        except ArchiveFull:
            outcomes.append(f"refused at {i}")
            break
    dropped_refused = sample("archive_dropped_total", reason="queue_half_full_refused")
    assert dropped_refused > refused_before  # refused frames' records went first
    assert outcomes[-1].startswith("refused at")  # then data uploads were refused
    stored = outcomes.count("stored")
    assert archive.queued_bytes <= archive.queue_bytes
    await spool.close()
    await archive.close()
    # every upload stored in the spool has its record, accepted, in the archive
    lines = [
        json.loads(x.split(b" ", 2)[2])
        for _, p in day_files(tmp_path / "archive")
        for x in p.read_bytes().splitlines()
    ]
    accepted = [x for x in lines if x["verdict"] == "accepted"]
    assert len(accepted) == stored
    again = Spool(tmp_path / "spool")
    await again.open()
    assert len(again.read(again.cursor, 10_000).payloads) == stored
    await again.close()
    assert isinstance(verify(tmp_path / "archive"), Verified)


async def test_at_the_cap_the_oldest_days_go_counted_logged_and_noted(tmp_path: Path) -> None:
    await write_days(tmp_path, days=3, per_day=60)  # about 23 KB a day
    before = sample("archive_days_deleted_total", reason="size")
    clock = [DAY1 + timedelta(days=3)]
    archive = FrameArchive(tmp_path, max_bytes=60_000, clock=lambda: clock[0])
    with structlog.testing.capture_logs() as logs:
        await archive.open()  # 69 KB on disk: the oldest day goes at once
        for i in range(80):  # today's grows: the next oldest goes too
            assert archive.put(record(1000 + i, clock[0]))
            fut = archive.durable()
            assert fut is not None
            await fut
        await archive.close()
    kept = [d.isoformat() for d, _ in day_files(tmp_path)]
    assert kept == ["2026-03-12", "2026-03-13"]
    assert sample("archive_days_deleted_total", reason="size") - before == 2
    deleted = [e for e in logs if e["event"] == "archive at its size cap: oldest day deleted"]
    assert [e["day"] for e in deleted] == ["2026-03-10", "2026-03-11"]
    assert [p.day.isoformat() for p in read_pruned(tmp_path)] == ["2026-03-10", "2026-03-11"]
    result = verify(tmp_path)
    assert isinstance(result, Verified) and result.records == 60 + 80


async def test_when_today_alone_fills_the_cap_uploads_wait_for_the_next_day(
    tmp_path: Path,
) -> None:
    clock = [DAY1]
    archive = FrameArchive(tmp_path, max_bytes=1 << 16, clock=lambda: clock[0])
    await archive.open()
    i = 0
    with pytest.raises(ArchiveFull):
        while True:
            archive.make_room(b"x" * 300)
            assert archive.put(record(i, clock[0]))
            fut = archive.durable()
            assert fut is not None
            await fut
            i += 1
    assert not archive.put(record(i, clock[0]))  # dropped meanwhile, counted
    clock[0] = DAY1 + timedelta(days=1)  # the next Beijing day: yesterday's file may go
    archive.make_room(b"x" * 300)
    assert archive.put(record(i + 1, clock[0]))
    fut = archive.durable()
    assert fut is not None
    await fut
    assert archive.put(record(i + 2, clock[0]))  # the full day went after that write
    fut = archive.durable()
    assert fut is not None
    await fut
    await archive.close()
    assert [d.isoformat() for d, _ in day_files(tmp_path)] == ["2026-03-11"]
    assert isinstance(verify(tmp_path), Verified)


async def test_days_past_retention_are_deleted(tmp_path: Path) -> None:
    await write_days(tmp_path, days=5, per_day=3)
    archive = FrameArchive(tmp_path, retention_days=2, clock=lambda: DAY1 + timedelta(days=4))
    await archive.open()
    await archive.close()
    assert [d.isoformat() for d, _ in day_files(tmp_path)] == [
        "2026-03-12",
        "2026-03-13",
        "2026-03-14",
    ]
    assert {p.reason for p in read_pruned(tmp_path)} == {"retention"}
    assert isinstance(verify(tmp_path), Verified)


SCRIPT = textwrap.dedent(
    """
    import asyncio, json, resource, signal, sys
    from pathlib import Path
    from gateway.archive import FrameArchive
    from gateway.ingest.spool import Spool
    from tests.archive.kit import DAY1, record

    async def main(directory):
        archive = FrameArchive(Path(directory) / "archive", clock=lambda: DAY1)
        spool = Spool(Path(directory) / "spool")
        await archive.open()
        await spool.open()
        spool.before_write = archive.durable
        for i in range(5):  # a day file far larger than the spool's segment
            archive.put(record(i, DAY1))
        await archive.durable()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of dying
        limit = (Path(directory) / "archive" / "2026-03-10.frames").stat().st_size + 100
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        archive.put(record(99, DAY1))
        try:
            await spool.append(b"emission,mn=MN1 avg=1 1\\n")
            acked = True
        except OSError:
            acked = False
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        in_spool = len(spool.read(spool.cursor, 100).payloads)
        archive.put(record(100, DAY1))
        await spool.append(b"emission,mn=MN1 avg=2 2\\n")  # the disk is back: acks again
        after = len(spool.read(spool.cursor, 100).payloads)
        await spool.close()
        await archive.close()
        print(json.dumps({"acked": acked, "in_spool": in_spool, "after": after}))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_the_spool_writes_nothing_the_archive_could_not_write_first(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"acked": False, "in_spool": 0, "after": 1}
    check = verify(tmp_path / "archive")
    assert isinstance(check, Verified) and check.records == 6  # the failed record is not there
