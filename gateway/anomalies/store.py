"""The anomaly store: SQLite (standard library) in the gateway's data folder.

Keeps the current state of every anomaly and the ordered stream of changes (`seq`), which the
API serves and resumes from (`Last-Event-ID`). Writing an anomaly that is already stored with
the same content is a no-op, so replayed data never duplicates the stream.

The schema is versioned (``PRAGMA user_version``, see `gateway.migrations`): version 1 is the
schema of the first release, whose files say 0 and open unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from gateway.migrations import Migration, migrate

from .model import Anomaly, AnomalyEvent, EventKind

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS anomaly (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    family TEXT NOT NULL,
    enterprise TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS anomaly_enterprise ON anomaly (enterprise, started_at);
CREATE INDEX IF NOT EXISTS anomaly_state ON anomaly (state, started_at);
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    anomaly_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

# (version, step) in order; append a step for every change of the schema, never edit one
MIGRATIONS: list[Migration] = [(1, _SCHEMA_V1)]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_UPSERT = (
    "INSERT INTO anomaly (id, type, family, enterprise, state, started_at, ended_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state,"
    " ended_at = excluded.ended_at, body = excluded.body"
)

Listener = Callable[[AnomalyEvent], None]


class AnomalyStore:
    def __init__(self, path: Path | str) -> None:
        """Open (or create) the store, migrating its schema; `StateError` when the file was
        written by a newer release."""
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            migrate(self._db, path, "anomaly store", MIGRATIONS)
        except BaseException:
            self._db.close()
            raise
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()

    def close(self) -> None:
        self._db.close()

    def add_listener(self, listener: Listener) -> None:
        """Called with every new event (publication to InfluxDB and MQTT, live push)."""
        self._listeners.append(listener)

    # -- writing --------------------------------------------------------------------------

    def record(self, anomaly: Anomaly) -> AnomalyEvent | None:
        """Store `anomaly`; the event it makes, or None when nothing changed."""
        row = self._db.execute("SELECT body FROM anomaly WHERE id = ?", (anomaly.id,)).fetchone()
        kind: EventKind
        if row is None:
            kind = "opened"  # first seen (an instant anomaly arrives already closed)
        else:
            old = Anomaly.from_json(json.loads(row[0]))
            if old.same_content(anomaly) or _stale(old, anomaly):
                return None
            if old.state == "closed" and anomaly.state == "closed":
                kind = "updated"
            else:
                kind = "closed" if anomaly.state == "closed" else "updated"
            anomaly = replace(anomaly, detected_at=old.detected_at)  # first detection counts
        body = json.dumps(anomaly.stored_json(), ensure_ascii=False)
        self._db.execute("BEGIN")
        try:
            self._db.execute(
                _UPSERT,
                (
                    anomaly.id,
                    anomaly.type,
                    anomaly.family,
                    anomaly.enterprise,
                    anomaly.state,
                    _utc(anomaly.started_at),
                    _utc(anomaly.ended_at) if anomaly.ended_at else None,
                    body,
                ),
            )
            cursor = self._db.execute(
                "INSERT INTO event (anomaly_id, kind, body) VALUES (?, ?, ?)",
                (anomaly.id, kind, body),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        event = AnomalyEvent(int(cursor.lastrowid or 0), kind, anomaly)
        for listener in self._listeners:
            listener(event)
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    # -- reading --------------------------------------------------------------------------

    def get(self, anomaly_id: str) -> Anomaly | None:
        row = self._db.execute("SELECT body FROM anomaly WHERE id = ?", (anomaly_id,)).fetchone()
        return Anomaly.from_json(json.loads(row[0])) if row else None

    def open_anomalies(self) -> list[Anomaly]:
        rows = self._db.execute("SELECT body FROM anomaly WHERE state = 'open'").fetchall()
        return [Anomaly.from_json(json.loads(r[0])) for r in rows]

    def query(
        self,
        *,
        enterprise: str | None = None,
        enterprises: Collection[str] | None = None,
        type_: str | None = None,
        family: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Anomaly], int]:
        """(page of anomalies, newest first; total matching). `since`/`until` bound the
        interval: an anomaly matches when it overlaps [since, until]. `enterprises` limits
        the result to those enterprises (a caller's scope; None: no limit)."""
        where: list[str] = []
        args: list[str | int] = []
        if enterprises is not None:  # one JSON parameter, however many enterprises
            where.append("enterprise IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(sorted(enterprises)))
        for column, value in (
            ("enterprise", enterprise),
            ("type", type_),
            ("family", family),
            ("state", state),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("(ended_at IS NULL OR ended_at >= ?)")
            args.append(_utc(since))
        if until is not None:
            where.append("started_at <= ?")
            args.append(_utc(until))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = int(self._db.execute(f"SELECT count(*) FROM anomaly{clause}", args).fetchone()[0])
        rows = self._db.execute(
            f"SELECT body FROM anomaly{clause} ORDER BY started_at DESC, id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [Anomaly.from_json(json.loads(r[0])) for r in rows], total

    def events_after(self, seq: int, limit: int = 500) -> list[AnomalyEvent]:
        rows = self._db.execute(
            "SELECT seq, kind, body FROM event WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [AnomalyEvent(r[0], r[1], Anomaly.from_json(json.loads(r[2]))) for r in rows]

    def events_of(self, anomaly_id: str) -> list[AnomalyEvent]:
        """Every event of one anomaly, oldest first (its history: each version as recorded)."""
        rows = self._db.execute(
            "SELECT seq, kind, body FROM event WHERE anomaly_id = ? ORDER BY seq", (anomaly_id,)
        ).fetchall()
        return [AnomalyEvent(r[0], r[1], Anomaly.from_json(json.loads(r[2]))) for r in rows]

    def last_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM event").fetchone()
        return int(row[0] or 0)

    async def wait_for_events(self, timeout_s: float) -> None:
        """Return when a new event is recorded, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)


def _stale(old: Anomaly, new: Anomaly) -> bool:
    """A replay of an earlier stage: it reaches less far, or reopens what was closed."""
    if new.judged_until < old.judged_until:
        return True
    return new.judged_until == old.judged_until and old.state == "closed" and new.state == "open"


def _utc(moment: datetime) -> str:
    """Sortable UTC text for the indexed columns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
