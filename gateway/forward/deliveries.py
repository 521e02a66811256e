"""What went where: a target's delivery log, `<data_dir>/forward/<target>/<day>.jsonl`, one
line per frame delivered (the Beijing day it was sent): the archive record's hash, MN, CN,
DataTime, when it was sent and when the target acknowledged it (null without `ack`). Pruned
with the archive: a day older than the archive's oldest day file goes."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.archive.record import BEIJING


@dataclass(frozen=True, slots=True)
class Delivery:
    hash: str
    mn: str
    cn: str
    data_time: datetime | None
    sent_at: datetime
    acked_at: datetime | None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment is not None else None


class DeliveryLog:
    """Appends to the day files of one target's folder (blocking: off the event loop)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def append(self, entries: list[Delivery]) -> None:
        if not entries:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        by_day: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            line = {
                "hash": e.hash,
                "mn": e.mn,
                "cn": e.cn,
                "data_time": _iso(e.data_time),
                "sent_at": _iso(e.sent_at),
                "acked_at": _iso(e.acked_at),
            }
            day = e.sent_at.astimezone(BEIJING).date().isoformat()
            by_day[day].append(json.dumps(line, separators=(",", ":")))
        for day, lines in by_day.items():
            with (self.directory / f"{day}.jsonl").open("a", encoding="ascii") as out:
                out.write("\n".join(lines) + "\n")

    def read(self) -> list[dict[str, object]]:
        """Every line of every day, oldest day first (for tests and inspection)."""
        out: list[dict[str, object]] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            out += [json.loads(line) for line in path.read_text().splitlines() if line]
        return out
