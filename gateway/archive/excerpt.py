"""The raw frames behind an anomaly, found in the archive, with what proves them: each
frame's record (hash and previous hash) and the chain of every day file they come from,
checked while reading (its last hash at that moment).

`selectors` (pure) says what to look for: the anomaly's MNs (its subject or evidence, or the
registry's outlets of its outlet or line) or, for a refused sender, its address. `find` reads
the day files from the day before the anomaly's start to the day after it was last judged.
A frame matches when its DataTime (accepted uploads), else its receipt time, is in the
anomaly's window; at most `limit` are kept, the earliest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from ..anomalies.model import Anomaly
from ..registry import Registry
from .chain import Break, check_stream
from .files import chain_start, day_files, last_hash
from .record import BEIJING, GENESIS, ArchivedRecord, RecordError, decode

LIMIT = 2000  # frames in one evidence pack


@dataclass(frozen=True, slots=True)
class Found:
    """An archived frame: its day file, line (from 1) and byte offset, and the record."""

    day: date
    line: int
    offset: int
    record: ArchivedRecord


@dataclass(frozen=True, slots=True)
class DayChain:
    """A day file read for the excerpt: the hash it follows, its records and last hash as
    read, and where it broke (None: every record checked)."""

    day: date
    follows: str
    records: int
    last_hash: str
    broken: Break | None


@dataclass(slots=True)
class Excerpt:
    mns: tuple[str, ...]
    addresses: tuple[str, ...]
    start: datetime
    end: datetime
    limit: int
    frames: list[Found] = field(default_factory=list)
    matched: int = 0  # frames matching, kept or not
    days: list[DayChain] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.matched > len(self.frames)


def selectors(anomaly: Anomaly, registry: Registry) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(MNs, sender addresses) whose frames explain the anomaly."""
    kind, _, rest = anomaly.subject.partition(":")
    mns: list[str] = []
    addresses: list[str] = []
    evidence_mn = anomaly.evidence.get("mn")
    if isinstance(evidence_mn, str) and evidence_mn:
        mns.append(evidence_mn)
    if kind == "mn":
        mns.append(rest.split("/", 1)[0])
    elif kind == "address" and rest != "*":
        addresses.append(rest)
    elif kind in ("outlet", "line"):
        ent_id, _, tail = rest.partition("/")
        name = tail.split("/", 1)[0].split(":", 1)[0]
        ent = registry.enterprise(ent_id)
        for outlet in ent.outlets if ent is not None else []:
            wanted = outlet.id == name if kind == "outlet" else name in outlet.lines
            if wanted:
                mns.append(outlet.mn)
    return tuple(dict.fromkeys(mns)), tuple(dict.fromkeys(addresses))


def window(anomaly: Anomaly, now: datetime) -> tuple[datetime, datetime]:
    return anomaly.started_at, anomaly.ended_at or anomaly.as_of or now


def find(
    directory: Path, anomaly: Anomaly, registry: Registry, now: datetime, limit: int = LIMIT
) -> Excerpt:
    """The anomaly's frames in the archive under `directory`."""
    mns, addresses = selectors(anomaly, registry)
    start, end = window(anomaly, now)
    out = Excerpt(mns, addresses, start, end, limit)
    if not (mns or addresses):
        return out
    last_seen = max(t for t in (anomaly.detected_at, end, anomaly.as_of or end) if t is not None)
    first_day = (start - timedelta(days=1)).astimezone(BEIJING).date()
    last_day = (last_seen + timedelta(days=1)).astimezone(BEIJING).date()
    files = day_files(directory)
    earlier = [p for d, p in files if d < first_day]
    prev = (last_hash(earlier[-1]) or GENESIS) if earlier else None
    needles = [b'"mn":' + json.dumps(mn).encode() for mn in mns]
    needles += [b'"peer":"' + a.encode("ascii", "replace") + b":" for a in addresses]
    for day, path in files:
        if not first_day <= day <= last_day:
            continue
        follows = prev if prev is not None else chain_start(directory, day)

        def seen(line: int, offset: int, digest: str, line_prev: str, body: bytes) -> None:
            if not any(n in body for n in needles):
                return
            try:
                rec = decode(f"{digest} {line_prev} ".encode() + body)
            except RecordError:
                return
            if not _matches(rec, mns, addresses, start, end):
                return
            out.matched += 1
            if len(out.frames) < limit:
                out.frames.append(Found(day, line, offset, rec))  # noqa: B023

        with path.open("rb") as source:
            check = check_stream(source, follows, seen)
        out.days.append(DayChain(day, follows, check.records, check.last_hash, check.broken))
        prev = check.last_hash
    return out


def _matches(
    rec: ArchivedRecord,
    mns: tuple[str, ...],
    addresses: tuple[str, ...],
    start: datetime,
    end: datetime,
) -> bool:
    r = rec.record
    if r.mn not in mns and r.peer.rpartition(":")[0] not in addresses:
        return False
    moment = r.data_time or r.received_at
    return start <= moment <= end
