"""A target's durable position over the archive: `<data_dir>/forward/<target>.cursor.json`.

`day` and `offset`: the next record to deliver is at that byte of that Beijing day file (`day`
None: before the first day file). `hash`: the last record delivered (or passed over), which the
next record's PREV must be; when it is not, records between were deleted (pruned).
Written atomically: a temporary file, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Cursor:
    day: date | None
    offset: int
    hash: str


def cursor_path(directory: Path, target: str) -> Path:
    return directory / f"{target}.cursor.json"


def load_cursor(path: Path) -> Cursor | None:
    """The saved cursor; None when there is none (ValueError when it is unreadable)."""
    try:
        obj = json.loads(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable forward cursor: {exc}") from None
    try:
        day = date.fromisoformat(obj["day"]) if obj["day"] is not None else None
        return Cursor(day, int(obj["offset"]), str(obj["hash"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable forward cursor: {exc!r}") from None


def save_cursor(path: Path, cursor: Cursor) -> None:
    """Replace the saved cursor durably (blocking: call it off the event loop)."""
    body = {
        "day": cursor.day.isoformat() if cursor.day else None,
        "offset": cursor.offset,
        "hash": cursor.hash,
        "saved_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="ascii") as out:
        json.dump(body, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
