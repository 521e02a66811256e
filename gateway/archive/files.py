"""The archive folder on disk: one file per Beijing day (`2026-03-10.frames`), and
`pruned.jsonl`, one line per day file the gateway deleted (retention or the size cap) with the
day's last hash, so that the chain still checks from the oldest day kept."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .record import GENESIS, RecordError, day_name, parse_day_name, split_line

PRUNED = "pruned.jsonl"
CURRENT = "current.json"  # the day file being written and the hash it follows
_TAIL = 64 << 10  # read back from a file's end at a time, looking for its last line


@dataclass(frozen=True, slots=True)
class Pruned:
    """A day file the gateway deleted, and the hash its next day continues from."""

    day: date
    last_hash: str
    bytes: int
    reason: str  # "size" or "retention"
    deleted_at: str  # ISO 8601


def day_files(directory: Path) -> list[tuple[date, Path]]:
    """The day files, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        day = parse_day_name(path.name)
        if day is not None and path.is_file():
            found.append((day, path))
    return sorted(found)


def day_path(directory: Path, day: date) -> Path:
    return directory / day_name(day)


def last_line(path: Path) -> tuple[bytes | None, int]:
    """The last whole line of a file (without its newline; None if it has none) and the length
    of the file up to and including that line's newline (what is kept if a torn tail is cut)."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = size
        tail = b""
        while start > 0:
            start = max(0, start - _TAIL)
            f.seek(start)
            tail = f.read(size - start)
            end = tail.rfind(b"\n")
            if end < 0:
                continue
            begin = tail.rfind(b"\n", 0, end) + 1
            if begin > 0 or start == 0:
                return tail[begin:end], start + end + 1
        return None, 0


def last_hash(path: Path) -> str | None:
    """HASH of a day file's last whole line; None when it has none or it is not a record."""
    line, _ = last_line(path)
    if line is None:
        return None
    try:
        return split_line(line)[0]
    except RecordError:
        return None


def read_pruned(directory: Path) -> list[Pruned]:
    """The ledger of deleted days, in the order they were deleted (lines that do not parse,
    e.g. one cut by a crash, are left out)."""
    path = directory / PRUNED
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            obj = json.loads(line)
            out.append(
                Pruned(
                    date.fromisoformat(obj["day"]),
                    str(obj["last_hash"]),
                    int(obj["bytes"]),
                    str(obj["reason"]),
                    str(obj["deleted_at"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def append_pruned(directory: Path, entry: Pruned) -> None:
    """Add a deleted day to the ledger, durably (before its file goes)."""
    line = json.dumps(
        {
            "day": entry.day.isoformat(),
            "last_hash": entry.last_hash,
            "bytes": entry.bytes,
            "reason": entry.reason,
            "deleted_at": entry.deleted_at,
        },
        separators=(",", ":"),
    )
    fd = os.open(directory / PRUNED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, line.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def chain_start(directory: Path, before: date | None) -> str:
    """The hash the first day file kept (before `before`, or any) must follow: the last hash of
    the latest deleted day before it, or GENESIS when none was deleted."""
    entries = [p for p in read_pruned(directory) if before is None or p.day < before]
    return max(entries, key=lambda p: p.day).last_hash if entries else GENESIS


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_current(directory: Path, day: date, follows: str) -> None:
    """Note, durably, the day file the writer begins and the hash it follows (so that deleting
    the newest day file is seen too)."""
    tmp = directory / (CURRENT + ".tmp")
    with tmp.open("w") as out:
        json.dump({"day": day.isoformat(), "follows": follows}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, directory / CURRENT)
    fsync_dir(directory)


def read_current(directory: Path) -> tuple[date, str] | None:
    try:
        obj = json.loads((directory / CURRENT).read_text())
        return date.fromisoformat(obj["day"]), str(obj["follows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
