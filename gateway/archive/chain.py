"""Checking a day's records against the chain (pure: bytes in, verdict out).

A day checks when every line is ``HASH PREV CONTENT``, each PREV is the hash of the line
before it (the first: the hash the day is expected to follow), and each HASH is SHA-256 of
PREV's hex digits and CONTENT. The first line that does not is the break: its line number and
byte offset in the file. Changing, adding or removing any byte of a line, or removing, adding
or reordering lines, breaks it there or at the next line.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .record import RecordError, chain_hash, split_line


@dataclass(frozen=True, slots=True)
class Break:
    """Where a day stops checking: line number (from 1), byte offset of that line, why."""

    line: int
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class DayCheck:
    """What checking one day's bytes found."""

    records: int  # lines that checked, before any break
    first_prev: str | None  # PREV of its first line (None: no line)
    last_hash: str  # hash of the last line that checked (the expected prev when none did)
    broken: Break | None
    torn_bytes: int = 0  # bytes after the last newline (a write cut short), not counted


Seen = Callable[[int, int, str, str, bytes], None]  # line, offset, HASH, PREV, CONTENT


def step(prev: str, line: bytes, number: int) -> tuple[str, str, bytes] | str:
    """HASH, PREV and CONTENT of line `number` (without its newline) if it follows `prev`, else
    why it does not."""
    try:
        digest, line_prev, body = split_line(line)
    except RecordError as exc:
        return str(exc)
    if line_prev != prev:
        if number > 1:
            return (
                "PREV is not the hash of the record before it (a record is missing, added or moved)"
            )
        return (
            "the day does not continue the chain from the day before it (a day or records "
            "are missing, added or moved)"
        )
    if chain_hash(line_prev, body) != digest:
        return "HASH does not match the content (the record was changed)"
    return digest, line_prev, body


def check_stream(source: BinaryIO, expected_prev: str, seen: Seen | None = None) -> DayCheck:
    """Check a day file read from `source`, whose first record must follow `expected_prev`;
    `seen` is called with each record that checks."""
    prev = expected_prev
    first_prev: str | None = None
    count, offset = 0, 0
    for number, raw in enumerate(source, start=1):
        if not raw.endswith(b"\n"):  # the end of a write cut short
            return DayCheck(count, first_prev, prev, None, torn_bytes=len(raw))
        line = raw[:-1]
        if first_prev is None:
            first_prev = line[65:129].decode("ascii", "replace")
        result = step(prev, line, number)
        if isinstance(result, str):
            return DayCheck(count, first_prev, prev, Break(number, offset, result))
        digest, line_prev, body = result
        if seen is not None:
            seen(number, offset, digest, line_prev, body)
        prev = digest
        count += 1
        offset += len(raw)
    return DayCheck(count, first_prev, prev, None)


def check_day(data: bytes, expected_prev: str) -> DayCheck:
    """Check one day file's bytes, whose first record must follow `expected_prev`."""
    return check_stream(io.BytesIO(data), expected_prev)
