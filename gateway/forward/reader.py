"""Reading the archive for a target (blocking: called off the event loop, in bounded batches).

Only whole lines are read (the writer may be appending the last one), only records whose
verdict is `accepted` carry a frame to deliver; the others are passed over. A day file the
cursor points into, or would go to next, that is no longer there was deleted by the archive
(retention or its size cap): it is reported lost and reading goes on with the next day kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import structlog

from gateway.archive.files import day_files, day_path, last_hash, read_pruned
from gateway.archive.record import BEIJING, FrameRecord, RecordError, decode

from .cursor import Cursor

log = structlog.get_logger("gateway.forward")
_ACCEPTED = b'"verdict":"accepted"'


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive record read: where it ends, its hash, and its frame if accepted."""

    hash: str
    day: date
    end: int  # byte offset just after its line
    record: FrameRecord | None


@dataclass(slots=True)
class Batch:
    entries: list[Entry] = field(default_factory=list)
    cursor: Cursor | None = None  # where reading stopped (None: nothing read)
    lost_days: list[date] = field(default_factory=list)  # day files deleted before read
    chain_breaks: int = 0  # records whose PREV is not the hash delivered before them
    unreadable: int = 0  # lines that are not records (passed over)


def end_cursor(directory: Path, today: date | None = None) -> Cursor:
    """The archive's end: where a target that starts now begins (an empty archive: the start
    of `today`, so that days deleted before the target read them are seen as lost)."""
    files = day_files(directory)
    if not files:
        return Cursor(today, 0, "")
    day, path = files[-1]
    return Cursor(day, path.stat().st_size, last_hash(path) or "")


def start_cursor(directory: Path, today: date) -> Cursor:
    """The archive's oldest day: where a target that starts with what is kept begins."""
    files = day_files(directory)
    return Cursor(files[0][0] if files else today, 0, "")


def read_batch(
    directory: Path, cursor: Cursor, *, max_records: int = 256, max_bytes: int = 1 << 20
) -> Batch:
    """The records after `cursor`, at most `max_records` and about `max_bytes`."""
    batch = Batch()
    days = [d for d, _ in day_files(directory)]
    pos = cursor
    budget = max_bytes
    while len(batch.entries) < max_records and budget > 0:
        if pos.day is None:
            if not days:
                break
            pos = Cursor(days[0], 0, pos.hash)
            continue
        day = pos.day
        later = [d for d in days if d > day]
        if day not in days:
            if not later:
                break  # nothing after it yet
            batch.lost_days += sorted(
                {
                    p.day
                    for p in read_pruned(directory)
                    if day <= p.day < later[0] and not (p.day == day and pos.offset >= p.bytes)
                }
            )
            pos = Cursor(later[0], 0, pos.hash)
            continue
        path = day_path(directory, day)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            days.remove(day)  # deleted just now: the next turn reports it
            continue
        if pos.offset >= size:
            if not later:
                break
            pos = Cursor(later[0], 0, pos.hash)
            continue
        data = _read_lines(path, pos.offset, min(size - pos.offset, budget))
        if not data:
            break  # a torn or growing last line: later
        budget -= len(data)
        offset = pos.offset
        for line in data.split(b"\n")[:-1]:
            offset += len(line) + 1
            entry = _entry(line, day, offset)
            if entry is None:
                batch.unreadable += 1
                continue
            if pos.hash and line[65:129] != pos.hash.encode():
                batch.chain_breaks += 1  # records before it deleted (pruned) or changed
            batch.entries.append(entry)
            pos = Cursor(day, offset, entry.hash)
            if len(batch.entries) >= max_records:
                break
        pos = Cursor(day, offset, pos.hash)
    batch.cursor = pos
    return batch


def first_after(directory: Path, cursor: Cursor) -> FrameRecord | None:
    """The first accepted record after `cursor` among the next few (for the lag)."""
    batch = read_batch(directory, cursor, max_records=16, max_bytes=64 << 10)
    return next((e.record for e in batch.entries if e.record is not None), None)


def _read_lines(path: Path, offset: int, length: int) -> bytes:
    """Bytes from `offset` up to the last newline within `length` (or, for one line longer
    than that, the end of that line)."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(length)
        end = data.rfind(b"\n")
        if end >= 0:
            return data[: end + 1]
        rest = f.readline()  # one record longer than the budget
        return data + rest if rest.endswith(b"\n") else b""


def _entry(line: bytes, day: date, end: int) -> Entry | None:
    try:
        digest = line[:64].decode("ascii")
        if _ACCEPTED not in line:
            return Entry(digest, day, end, None)
        rec = decode(line)
    except (RecordError, UnicodeDecodeError):
        log.error("forward: an archive line is not a record; passed over", day=str(day))
        return None
    return Entry(rec.hash, day, end, rec.record)


def behind_bytes(directory: Path, cursor: Cursor) -> int:
    """Bytes of the archive after `cursor`."""
    total = 0
    for day, path in day_files(directory):
        if cursor.day is not None and day < cursor.day:
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        total += size - cursor.offset if day == cursor.day else size
    return max(total, 0)


def history(
    directory: Path, mn: str, begin: datetime, end: datetime, *, limit: int = 5000
) -> list[FrameRecord]:
    """Accepted records of `mn` whose DataTime lies in [begin, end] (aware), in the order
    received, at most `limit`. A frame is received at the earliest a day before its DataTime
    (`[hj212] max_future_s`), and back-filled ones any time later, so the day files from the
    Beijing day before `begin` to the newest are read."""
    first = begin.astimezone(BEIJING).date() - timedelta(days=1)
    needle = f'"mn":"{mn}"'.encode()
    found: list[FrameRecord] = []
    for day, path in day_files(directory):
        if day < first:
            continue
        with path.open("rb") as source:
            for line in source:
                if needle not in line or _ACCEPTED not in line or not line.endswith(b"\n"):
                    continue
                try:
                    rec = decode(line).record
                except RecordError:
                    continue
                if rec.data_time is not None and begin <= rec.data_time <= end:
                    found.append(rec)
                    if len(found) >= limit:
                        return found
    return found


def prune_logs(directory: Path, oldest: date | None) -> int:
    """Delete the delivery-log day files (`<day>.jsonl`) before `oldest`; how many."""
    if oldest is None or not directory.is_dir():
        return 0
    gone = 0
    for path in directory.glob("*.jsonl"):
        try:
            day = date.fromisoformat(path.stem)
        except ValueError:
            continue
        if day < oldest:
            os.unlink(path)
            gone += 1
    return gone
