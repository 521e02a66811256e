"""A copy of the archive folder while the gateway writes it (`pollution-gateway backup`): the
notes first (`current.json`, `pruned.jsonl`), then each day file, the newest cut after its last
whole record. The copy's chain checks: it is the archive's chain up to some record of the
moment of the copy."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .files import CURRENT, PRUNED, day_files, fsync_dir, last_line


@dataclass(frozen=True, slots=True)
class ArchiveCopy:
    days: int
    bytes: int


def copy_archive(source: Path, target: Path) -> ArchiveCopy:
    target.mkdir(parents=True, exist_ok=True)
    for name in (CURRENT, PRUNED):  # before the days: a day they name exists by then
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    total, files = 0, day_files(source)
    for _, path in files:
        _, whole = last_line(path)  # up to the last newline: a write under way is left out
        with path.open("rb") as src, (target / path.name).open("wb") as dst:
            left = whole
            while left > 0:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        total += whole
    fsync_dir(target)
    return ArchiveCopy(len(files), total)
