"""The record codec and the chain, property-based: whatever a frame's bytes and the text around
them, a record reads back as written, is one line, and no change to a line goes unseen."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.archive.chain import check_day
from gateway.archive.record import BEIJING, GENESIS, FrameRecord, decode, encode

times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
records = st.builds(
    FrameRecord,
    received_at=times,
    peer=st.text(max_size=60),
    conn=st.integers(min_value=0, max_value=2**40),
    mn=st.text(max_size=100),
    crc=st.sampled_from(["hj212", "modbus", "modbus_swapped", "none", ""]),
    verdict=st.sampled_from(["accepted", "crc", "bad_password", "unknown_mn", "archive_full"]),
    raw=st.binary(max_size=2000),
    data_time=st.none() | times,
)


@given(records, st.sampled_from([GENESIS, "ab" * 32]))
def test_a_record_reads_back_as_written(record: FrameRecord, prev: str) -> None:
    line, digest = encode(record, prev)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.isascii()
    back = decode(line)
    assert back.record == record
    assert (back.hash, back.prev) == (digest, prev)
    assert digest == hashlib.sha256(prev.encode() + back.content).hexdigest()


@given(st.lists(records, min_size=1, max_size=8), st.data())
def test_changing_any_byte_of_a_day_breaks_its_chain(
    day: list[FrameRecord], data: st.DataObject
) -> None:
    prev, lines = GENESIS, []
    for rec in day:
        line, prev = encode(rec, prev)
        lines.append(line)
    blob = b"".join(lines)
    whole = check_day(blob, GENESIS)
    assert (whole.records, whole.last_hash, whole.broken) == (len(day), prev, None)
    pos = data.draw(st.integers(min_value=0, max_value=len(blob) - 2), label="byte")
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != blob[pos]))
    tampered = blob[:pos] + bytes([new]) + blob[pos + 1 :]
    result = check_day(tampered, GENESIS)
    line_of_pos = blob[:pos].count(b"\n") + 1
    assert result.broken is not None
    assert result.broken.line <= line_of_pos + 1  # the changed line, or the next one


@given(st.lists(records, min_size=2, max_size=8), st.data())
def test_removing_or_moving_a_record_breaks_the_chain(
    day: list[FrameRecord], data: st.DataObject
) -> None:
    prev, lines = GENESIS, []
    for rec in day:
        line, prev = encode(rec, prev)
        lines.append(line)
    k = data.draw(st.integers(min_value=0, max_value=len(lines) - 2), label="removed")
    removed = check_day(b"".join(lines[:k] + lines[k + 1 :]), GENESIS)
    assert removed.broken is not None and removed.broken.line == k + 1
    swapped = [*lines[:k], lines[k + 1], lines[k], *lines[k + 2 :]]
    moved = check_day(b"".join(swapped), GENESIS)
    assert moved.broken is not None and moved.broken.line == k + 1


def test_the_day_is_the_beijing_day() -> None:
    late = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)  # 00:30 on the 10th in Beijing
    rec = FrameRecord(late, "p", 0, "", "", "crc", b"x")
    assert rec.day.isoformat() == "2026-03-10"
    assert (rec.received_at - timedelta(minutes=31)).astimezone(BEIJING).day == 9
