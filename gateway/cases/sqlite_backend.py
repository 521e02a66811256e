"""The case store's SQLite file (``cases.sqlite`` in the data folder), read and written by
this process alone; its schema is `schema.py`'s.

Writes are ``BEGIN IMMEDIATE`` transactions under the connection's lock, so a change reads
and writes a case with no other writer in between. ``synchronous=FULL``: an officer's action
survives a power cut. Times in the indexed columns are UTC text that sorts as time.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from ..migrations import immediate, open_store
from .backend import DONE_STATES, CaseChange, CaseFilter, Step
from .model import STATES, Case
from .schema import MIGRATIONS

_STEP_COLUMNS = "seq, case_id, at, actor, actor_role, action, from_state, to_state, details"


class SqliteCases:
    """`CaseBackend` on the SQLite file at `path`."""

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written
        by a newer release."""
        self.path = path
        self._db = open_store(path, "case store", MIGRATIONS, "FULL")
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def change(self) -> Iterator[CaseChange]:
        with self._lock, immediate(self._db):
            yield _Change(self._db)

    def body(self, case_id: int) -> str | None:
        with self._lock:
            return _body(self._db, case_id)

    def body_of(self, anomaly_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT cf.body FROM case_anomaly ca JOIN case_file cf ON cf.id = ca.case_id"
                " WHERE ca.anomaly_id = ?",
                (anomaly_id,),
            ).fetchone()
        return str(row[0]) if row else None

    def history(self, case_id: int) -> list[Step]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_STEP_COLUMNS} FROM case_step WHERE case_id = ? ORDER BY seq",
                (case_id,),
            ).fetchall()
        return [Step.of(row) for row in rows]

    def query(self, where: CaseFilter, limit: int, offset: int) -> tuple[list[str], int]:
        terms: list[str] = []
        args: list[str | int] = []
        if where.enterprises is not None:  # one JSON parameter, however many enterprises
            terms.append("enterprise IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(where.enterprises))
        for column, value in where.columns.items():
            terms.append(f"{column} = ?")
            args.append(value)
        if where.overdue is not None:
            late = (
                "(deadline IS NOT NULL AND deadline < ?"
                " AND state NOT IN (SELECT value FROM json_each(?)))"
            )
            terms.append(late if where.overdue else f"NOT {late}")
            args += [_utc(where.now), json.dumps(DONE_STATES)]
        clause = (" WHERE " + " AND ".join(terms)) if terms else ""
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM case_file{clause}", args).fetchone()
            rows = self._db.execute(
                f"SELECT body FROM case_file{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return [str(r[0]) for r in rows], int(total[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM case_file").fetchone()[0])

    def opened_between(
        self, start: datetime, end: datetime, enterprises: Collection[str] | None
    ) -> list[str]:
        where = "opened_at >= ? AND opened_at < ?"
        args: list[str] = [_utc(start), _utc(end)]
        if enterprises is not None:
            where += " AND enterprise IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(sorted(enterprises)))
        with self._lock:
            rows = self._db.execute(
                f"SELECT body FROM case_file WHERE {where} ORDER BY id", args
            ).fetchall()
        return [str(r[0]) for r in rows]

    def overdue_or_unsigned(
        self, now: datetime, since: datetime, unsigned_before: datetime
    ) -> list[str]:
        still_open = json.dumps([s for s in STATES if s not in DONE_STATES])
        sql = (  # through the (state, deadline) index
            "SELECT body FROM case_file WHERE id IN ("
            " SELECT id FROM case_file WHERE state IN (SELECT value FROM json_each(?))"
            " AND deadline >= ? AND deadline < ?"
            " UNION SELECT id FROM case_file WHERE state = 'new' AND level = 'alarm'"
            " AND opened_at >= ? AND opened_at < ? AND json_extract(body, '$.answer') IS NULL"
            ") ORDER BY id"
        )
        args = (still_open, _utc(since), _utc(now), _utc(since), _utc(unsigned_before))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [str(r[0]) for r in rows]


class _Change:
    """`CaseChange` inside a ``BEGIN IMMEDIATE`` transaction: no other writer meanwhile."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def lock_index(self) -> None:
        """Held already: the transaction is the file's only writer."""

    def body(self, case_id: int) -> str | None:
        return _body(self._db, case_id)

    def case_id_of(self, anomaly_id: str) -> int | None:
        row = self._db.execute(
            "SELECT case_id FROM case_anomaly WHERE anomaly_id = ?", (anomaly_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def same_day(self, enterprise: str, day: date) -> str | None:
        row = self._db.execute(
            "SELECT body FROM case_file WHERE enterprise = ? AND day = ?"
            " AND state NOT IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 1",
            (enterprise, day.isoformat(), json.dumps(DONE_STATES)),
        ).fetchone()
        return str(row[0]) if row else None

    def insert(self, case: Case) -> int:
        cursor = self._db.execute(
            "INSERT INTO case_file (enterprise, day, state, opened_at, level, body)"
            " VALUES (?, ?, ?, ?, ?, '{}')",
            (case.enterprise, case.day.isoformat(), case.state, _utc(case.opened_at), case.level),
        )
        return int(cursor.lastrowid or 0)

    def save(self, case: Case, body: str) -> None:
        self._db.execute(
            "UPDATE case_file SET state = ?, level = ?, assignee = ?, deadline = ?, body = ?"
            " WHERE id = ?",
            (
                case.state,
                case.level,
                case.assignee,
                _utc(case.deadline) if case.deadline else None,
                body,
                case.id,
            ),
        )

    def index(self, anomaly_id: str, case_id: int) -> None:
        self._db.execute(
            "INSERT INTO case_anomaly (anomaly_id, case_id) VALUES (?, ?)", (anomaly_id, case_id)
        )

    def unindex(self, anomaly_id: str) -> None:
        self._db.execute("DELETE FROM case_anomaly WHERE anomaly_id = ?", (anomaly_id,))

    def step(
        self,
        case_id: int,
        at: datetime,
        actor: str,
        actor_role: str,
        action: str,
        from_state: str | None,
        to_state: str,
        details: str,
    ) -> None:
        self._db.execute(
            "INSERT INTO case_step (case_id, at, actor, actor_role, action, from_state,"
            " to_state, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                at.astimezone(UTC).isoformat(timespec="microseconds"),
                actor,
                actor_role,
                action,
                from_state,
                to_state,
                details,
            ),
        )


def _body(db: sqlite3.Connection, case_id: int) -> str | None:
    row = db.execute("SELECT body FROM case_file WHERE id = ?", (case_id,)).fetchone()
    return str(row[0]) if row else None


def _utc(moment: datetime) -> str:
    """Sortable UTC text for the indexed columns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
