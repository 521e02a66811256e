"""The anomaly store: SQLite (standard library) in the gateway's data folder, or PostgreSQL.

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
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Protocol, cast

from gateway.migrations import Migration, open_store

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
EventRow = tuple[int, str, str]  # (seq, kind, body)
# given the stored body of an anomaly (None: not stored), what to store: (kind, anomaly), or None
Decide = Callable[[str | None], tuple[EventKind, Anomaly] | None]


class QueryFilter:
    """The filters of `AnomalyStore.query`, UTC bounds as the stores keep them."""

    __slots__ = ("columns", "enterprises", "since", "until")

    def __init__(
        self,
        enterprises: Collection[str] | None,
        columns: dict[str, str],
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.enterprises = None if enterprises is None else sorted(enterprises)
        self.columns = columns  # column -> value, all to match
        self.since = since
        self.until = until


class AnomalyBackend(Protocol):
    """Where an `AnomalyStore` keeps anomalies and events: this module's SQLite file, or
    PostgreSQL (`gateway.cluster.pg_anomalies`) shared by several processes."""

    @property
    def path(self) -> Path | str:
        """The SQLite file, or where PostgreSQL is (no password)."""

    def write(self, anomaly_id: str, decide: Decide) -> tuple[int, EventKind, Anomaly] | None:
        """In one transaction: read the stored body, `decide`, store the anomaly and its event;
        (seq, kind, anomaly) or None when `decide` said nothing changed."""

    def body(self, anomaly_id: str) -> str | None: ...
    def open_bodies(self) -> list[str]: ...
    def query(self, where: QueryFilter, limit: int, offset: int) -> tuple[list[str], int]: ...
    def events_after(self, seq: int, limit: int) -> list[EventRow]: ...
    def events_of(self, anomaly_id: str) -> list[EventRow]: ...
    def last_seq(self) -> int: ...

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` (from any thread) when another process recorded events."""

    def close(self) -> None: ...


class SqliteAnomalies:
    """The store's SQLite file, read and written by this process alone."""

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written
        by a newer release."""
        self.path = path
        self._db = open_store(path, "anomaly store", MIGRATIONS, "NORMAL")

    def close(self) -> None:
        self._db.close()

    def watch(self, changed: Callable[[], None]) -> None:
        """Nothing to watch: no other process writes the file."""

    def write(self, anomaly_id: str, decide: Decide) -> tuple[int, EventKind, Anomaly] | None:
        decided = decide(self.body(anomaly_id))
        if decided is None:
            return None
        kind, anomaly = decided
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
        return int(cursor.lastrowid or 0), kind, anomaly

    def body(self, anomaly_id: str) -> str | None:
        row = self._db.execute("SELECT body FROM anomaly WHERE id = ?", (anomaly_id,)).fetchone()
        return str(row[0]) if row else None

    def open_bodies(self) -> list[str]:
        rows = self._db.execute("SELECT body FROM anomaly WHERE state = 'open'").fetchall()
        return [r[0] for r in rows]

    def query(self, where: QueryFilter, limit: int, offset: int) -> tuple[list[str], int]:
        terms: list[str] = []
        args: list[str | int] = []
        if where.enterprises is not None:  # one JSON parameter, however many enterprises
            terms.append("enterprise IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(where.enterprises))
        for column, value in where.columns.items():
            terms.append(f"{column} = ?")
            args.append(value)
        if where.since is not None:
            terms.append("(ended_at IS NULL OR ended_at >= ?)")
            args.append(_utc(where.since))
        if where.until is not None:
            terms.append("started_at <= ?")
            args.append(_utc(where.until))
        clause = (" WHERE " + " AND ".join(terms)) if terms else ""
        total = int(self._db.execute(f"SELECT count(*) FROM anomaly{clause}", args).fetchone()[0])
        rows = self._db.execute(
            f"SELECT body FROM anomaly{clause} ORDER BY started_at DESC, id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [r[0] for r in rows], total

    def events_after(self, seq: int, limit: int) -> list[EventRow]:
        rows = self._db.execute(
            "SELECT seq, kind, body FROM event WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def events_of(self, anomaly_id: str) -> list[EventRow]:
        rows = self._db.execute(
            "SELECT seq, kind, body FROM event WHERE anomaly_id = ? ORDER BY seq", (anomaly_id,)
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def last_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM event").fetchone()
        return int(row[0] or 0)


class AnomalyStore:
    def __init__(self, where: Path | str | AnomalyBackend) -> None:
        """Open the store: a SQLite file's path (created, its schema migrated; `StateError`
        when written by a newer release), or a backend such as PostgreSQL's."""
        backend = SqliteAnomalies(where) if isinstance(where, Path | str) else where
        self._backend: AnomalyBackend = backend
        self.path = backend.path
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        try:  # events other processes record wake this loop's waiters
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        backend.watch(self._changed_elsewhere)

    def close(self) -> None:
        self._backend.close()

    def add_listener(self, listener: Listener) -> None:
        """Called with every new event this process records (publication to InfluxDB and
        MQTT, live push)."""
        self._listeners.append(listener)

    # -- writing --------------------------------------------------------------------------

    def record(self, anomaly: Anomaly) -> AnomalyEvent | None:
        """Store `anomaly`; the event it makes, or None when nothing changed."""
        written = self._backend.write(anomaly.id, partial(_decide, anomaly))
        if written is None:
            return None
        event = AnomalyEvent(*written)
        for listener in self._listeners:
            listener(event)
        self._wake()
        return event

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _changed_elsewhere(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    # -- reading --------------------------------------------------------------------------

    def get(self, anomaly_id: str) -> Anomaly | None:
        body = self._backend.body(anomaly_id)
        return Anomaly.from_json(json.loads(body)) if body else None

    def open_anomalies(self) -> list[Anomaly]:
        return [Anomaly.from_json(json.loads(b)) for b in self._backend.open_bodies()]

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
        columns = {
            column: value
            for column, value in (
                ("enterprise", enterprise),
                ("type", type_),
                ("family", family),
                ("state", state),
            )
            if value is not None
        }
        bodies, total = self._backend.query(
            QueryFilter(enterprises, columns, since, until), limit, offset
        )
        return [Anomaly.from_json(json.loads(b)) for b in bodies], total

    def events_after(self, seq: int, limit: int = 500) -> list[AnomalyEvent]:
        return _events(self._backend.events_after(seq, limit))

    def events_of(self, anomaly_id: str) -> list[AnomalyEvent]:
        """Every event of one anomaly, oldest first (its history: each version as recorded)."""
        return _events(self._backend.events_of(anomaly_id))

    def last_seq(self) -> int:
        return self._backend.last_seq()

    async def wait_for_events(self, timeout_s: float) -> None:
        """Return when a new event is recorded (here, or by another process sharing the
        backend), or after `timeout_s`."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)


def _events(rows: list[EventRow]) -> list[AnomalyEvent]:
    return [
        AnomalyEvent(seq, cast(EventKind, kind), Anomaly.from_json(json.loads(body)))
        for seq, kind, body in rows
    ]


def _decide(anomaly: Anomaly, stored: str | None) -> tuple[EventKind, Anomaly] | None:
    """The event `anomaly` makes over the stored version, or None when nothing changed."""
    kind: EventKind
    if stored is None:
        return "opened", anomaly  # first seen (an instant anomaly arrives already closed)
    old = Anomaly.from_json(json.loads(stored))
    if old.same_content(anomaly) or _stale(old, anomaly):
        return None
    if old.state == "closed" and anomaly.state == "closed":
        kind = "updated"
    else:
        kind = "closed" if anomaly.state == "closed" else "updated"
    return kind, replace(anomaly, detected_at=old.detected_at)  # first detection counts


def _stale(old: Anomaly, new: Anomaly) -> bool:
    """A replay of an earlier stage: it reaches less far, or reopens what was closed."""
    if new.judged_until < old.judged_until:
        return True
    return new.judged_until == old.judged_until and old.state == "closed" and new.state == "open"


def _utc(moment: datetime) -> str:
    """Sortable UTC text for the indexed columns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
