"""Archived days for the archive's tests, written by the real writer with a chosen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.archive import FrameArchive, FrameRecord

DAY1 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


def record(i: int, at: datetime, *, verdict: str = "accepted", mn: str = "MN1") -> FrameRecord:
    raw = f"##0101QN={i:017d};ST=32;CN=2051;PW=123456;MN={mn};Flag=5;CP=&&&&ABCD\r\n".encode()
    return FrameRecord(at, f"127.0.0.1:{40000 + i % 7}", 1 + i % 3, mn, "hj212", verdict, raw)


async def write_days(
    directory: Path, days: int, per_day: int, start: datetime = DAY1, **kwargs: int
) -> list[FrameRecord]:
    """`per_day` records on each of `days` consecutive days; the records written."""
    clock = [start]
    archive = FrameArchive(directory, clock=lambda: clock[0], **kwargs)
    await archive.open()
    written = []
    try:
        for d in range(days):
            clock[0] = start + timedelta(days=d)
            for i in range(per_day):
                rec = record(d * per_day + i, clock[0] + timedelta(seconds=i))
                assert archive.put(rec)
                written.append(rec)
            fut = archive.durable()
            if fut is not None:
                await fut
    finally:
        await archive.close()
    return written
