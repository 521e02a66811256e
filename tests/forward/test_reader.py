"""Reading the archive for a target, on archives written by the real writer: bounded batches in
order, whole lines only, the cursor saved and read back, days pruned before a target read them
counted as lost while the rest goes up in order."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from adapters.hj212.builder import data_ack
from adapters.hj212.frame import parse_frame
from adapters.hj212.framer import Framer
from gateway.archive import FrameArchive, FrameRecord
from gateway.archive.files import day_files
from gateway.forward import ForwardService, ForwardTarget
from gateway.forward.cursor import Cursor, cursor_path, load_cursor, save_cursor
from gateway.forward.reader import behind_bytes, end_cursor, history, prune_logs, read_batch
from gateway.registry import Registry
from gateway.supervisor import hj212_codec
from tests.conftest import REGISTRY as REGISTRY_TEXT
from tests.frames import MN_WATER

from .kit import minute_upload, wait_until

DAY1 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


def accepted(i: int, at: datetime) -> FrameRecord:
    raw = minute_upload(i)[:-2]
    return FrameRecord(at, "127.0.0.1:4000", 1, MN_WATER, "hj212", "accepted", raw, at)


def refused(at: datetime) -> FrameRecord:
    return FrameRecord(at, "127.0.0.1:4001", 2, "X", "none", "crc", b"##0000junk", None)


async def write(directory: Path, days: int, per_day: int, **kwargs: int) -> list[FrameRecord]:
    """`per_day` accepted records (and one refused) on each of `days` days."""
    clock = [DAY1]
    archive = FrameArchive(directory, clock=lambda: clock[0], **kwargs)
    await archive.open()
    out = []
    try:
        for d in range(days):
            clock[0] = DAY1 + timedelta(days=d)
            for i in range(per_day):
                rec = accepted(d * per_day + i, clock[0] + timedelta(seconds=i))
                assert archive.put(rec)
                out.append(rec)
            assert archive.put(refused(clock[0] + timedelta(seconds=per_day)))
            fut = archive.durable()
            if fut is not None:
                await fut
    finally:
        await archive.close()
    return out


async def test_batches_follow_the_archive_in_order_and_are_bounded(tmp_path: Path) -> None:
    written = await write(tmp_path, days=2, per_day=30)
    cursor, seen, refusals = Cursor(None, 0, ""), [], 0
    while True:
        batch = read_batch(tmp_path, cursor, max_records=7)
        assert len(batch.entries) <= 7 and batch.chain_breaks == 0
        if not batch.entries:
            break
        assert batch.cursor is not None
        cursor = batch.cursor
        seen += [e.record.raw for e in batch.entries if e.record is not None]
        refusals += sum(1 for e in batch.entries if e.record is None)
    assert seen == [r.raw for r in written]
    assert refusals == 2
    assert cursor == end_cursor(tmp_path)
    assert behind_bytes(tmp_path, cursor) == 0
    assert behind_bytes(tmp_path, Cursor(None, 0, "")) == sum(
        p.stat().st_size for _, p in day_files(tmp_path)
    )


async def test_a_line_being_written_is_not_read(tmp_path: Path) -> None:
    await write(tmp_path, days=1, per_day=3)
    path = day_files(tmp_path)[-1][1]
    whole = path.stat().st_size
    with path.open("ab") as out:
        out.write(b"0" * 64 + b" " + b"1" * 20)  # a torn last line
    batch = read_batch(tmp_path, Cursor(None, 0, ""))
    assert len(batch.entries) == 4 and batch.cursor == Cursor(
        batch.entries[-1].day, whole, batch.entries[-1].hash
    )


def test_cursor_round_trip_and_unreadable_cursor(tmp_path: Path) -> None:
    path = cursor_path(tmp_path, "province")
    assert load_cursor(path) is None
    cursor = Cursor(DAY1.date(), 1234, "ab" * 32)
    save_cursor(path, cursor)
    assert load_cursor(path) == cursor
    assert not path.with_name(path.name + ".tmp").exists()
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable forward cursor"):
        load_cursor(path)


async def test_history_finds_an_mns_records_by_data_time(tmp_path: Path) -> None:
    written = await write(tmp_path, days=3, per_day=10)
    begin = written[12].received_at
    end = written[25].received_at
    found = history(tmp_path, MN_WATER, begin, end)
    assert [r.raw for r in found] == [r.raw for r in written[12:26]]
    assert history(tmp_path, "OTHER", begin, end) == []
    assert len(history(tmp_path, MN_WATER, begin, end, limit=3)) == 3


async def acking(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A platform that answers every upload with its 9014."""
    framer = Framer()
    while chunk := await reader.read(65536):
        for raw in framer.feed(chunk):
            writer.write(data_ack(parse_frame(raw)))
        await writer.drain()
    writer.close()


async def test_days_pruned_before_the_target_read_them_are_counted_lost(tmp_path: Path) -> None:
    archive_dir, state = tmp_path / "archive", tmp_path / "forward"
    written = await write(archive_dir, days=3, per_day=5)
    state.mkdir()
    save_cursor(cursor_path(state, "late"), Cursor(DAY1.date(), 0, ""))  # it read nothing
    # the archive opens two days later with a retention of one day: days 1 and 2 go
    later = FrameArchive(archive_dir, retention_days=1, clock=lambda: DAY1 + timedelta(days=3))
    await later.open()
    await later.close()
    assert [d for d, _ in day_files(archive_dir)] == [(DAY1 + timedelta(days=2)).date()]
    (tmp_path / "registry.toml").write_text(REGISTRY_TEXT)
    registry = Registry.load(tmp_path / "registry.toml")
    server = await asyncio.start_server(acking, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = ForwardTarget(name="late", address=f"127.0.0.1:{port}", window=3)
    service = ForwardService(
        [target], archive_dir, state, lambda: registry, ZoneInfo("UTC"), hj212_codec()
    )
    await service.start()
    try:
        await wait_until(lambda: service.status()[0]["acked"] >= 5, 20, "day 3 delivered")
        await wait_until(lambda: service.status()[0]["cursor"]["offset"] > 0, 10, "the cursor")
    finally:
        await service.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
    status = service.status()[0]
    assert status["lost"] == 2  # the day the cursor was on, and the one after it
    lost = REGISTRY.get_sample_value("forward_lost_total", {"target": "late", "reason": "pruned"})
    assert lost == 2
    saved = load_cursor(cursor_path(state, "late"))
    assert saved == end_cursor(archive_dir)
    delivered = service.targets[0].deliveries.read()
    assert [line["data_time"] for line in delivered] == [
        r.data_time.isoformat(timespec="milliseconds")
        for r in written[10:]
        if r.data_time is not None
    ]


async def test_a_day_read_to_its_end_then_pruned_is_not_lost(tmp_path: Path) -> None:
    await write(tmp_path, days=2, per_day=4)
    first_day, first_path = day_files(tmp_path)[0]
    done = Cursor(first_day, first_path.stat().st_size, "")
    later = FrameArchive(tmp_path, retention_days=1, clock=lambda: DAY1 + timedelta(days=2))
    await later.open()
    await later.close()
    assert first_day not in [d for d, _ in day_files(tmp_path)]
    batch = read_batch(tmp_path, done)
    assert batch.lost_days == [] and len(batch.entries) == 5
    assert read_batch(tmp_path, Cursor(first_day, 10, "")).lost_days == [first_day]


def test_delivery_logs_older_than_the_archive_go(tmp_path: Path) -> None:
    for day in ("2026-03-09", "2026-03-10", "2026-03-11"):
        (tmp_path / f"{day}.jsonl").write_text("{}\n")
    (tmp_path / "notes.jsonl").write_text("kept: not a day\n")
    assert prune_logs(tmp_path, DAY1.date()) == 1  # the archive's oldest day: 2026-03-10
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2026-03-10.jsonl",
        "2026-03-11.jsonl",
        "notes.jsonl",
    ]
    assert prune_logs(tmp_path, None) == 0  # no archive day: nothing known to be older
