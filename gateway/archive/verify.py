"""Checking the archive folder's chain: one day, or every day in order
(`pollution-gateway archive verify`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .chain import check_stream
from .files import chain_start, day_files, last_hash, read_current, read_pruned
from .record import GENESIS


@dataclass(frozen=True, slots=True)
class Verified:
    """The chain checks: what it holds."""

    days: int
    records: int
    first_day: date | None
    last_day: date | None
    follows: str  # the hash the first day checked continues from
    last_hash: str
    torn_bytes: int = 0  # an unfinished write at the newest day's end (cut at the next start)


@dataclass(frozen=True, slots=True)
class Broken:
    """The first record (day, line from 1, byte offset in the day file) that does not check."""

    day: date
    line: int
    offset: int
    reason: str


def verify(directory: Path, only: date | None = None) -> Verified | Broken:
    """Check the chain of every day file in order (or of the day `only`, from the hash its
    previous day file ends with)."""
    files = day_files(directory)
    if only is not None:
        earlier = [p for d, p in files if d < only]
        files = [(d, p) for d, p in files if d == only]
        if not files:
            return Broken(only, 0, 0, "no day file")
        follows = (last_hash(earlier[-1]) or GENESIS) if earlier else chain_start(directory, only)
    else:
        follows = chain_start(directory, files[0][0] if files else None)
        current = read_current(directory)
        pruned = {p.day for p in read_pruned(directory)}
        if current is not None and current[0] not in {d for d, _ in files} | pruned:
            return Broken(current[0], 0, 0, "the day file being written is missing")
    prev, records, torn = follows, 0, 0
    for n, (day, path) in enumerate(files):
        with path.open("rb") as source:
            check = check_stream(source, prev)
        if check.broken is not None:
            b = check.broken
            return Broken(day, b.line, b.offset, b.reason)
        newest = n == len(files) - 1 and (only is None or day == day_files(directory)[-1][0])
        if check.torn_bytes and not newest:
            size = path.stat().st_size
            return Broken(day, check.records + 1, size - check.torn_bytes, "a record cut short")
        prev, records, torn = check.last_hash, records + check.records, check.torn_bytes
    return Verified(
        days=len(files),
        records=records,
        first_day=files[0][0] if files else None,
        last_day=files[-1][0] if files else None,
        follows=follows,
        last_hash=prev,
        torn_bytes=torn,
    )
