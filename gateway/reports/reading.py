"""What the reports read from the anomaly and case stores, in a few batched queries on
connections of their own, opened and closed in the thread that uses them (a report is built
off the event loop; the stores' own connections stay with them).

Each store is read where its backend keeps it (`source`): a SQLite file through a read-only
connection (WAL lets these reads go on while the gateway writes: each query sees the file as
of its start), or PostgreSQL through a connection of its own in one read-only REPEATABLE READ
transaction (every query of a source sees the same committed state). The queries are written
once, with `?` for parameters; a `Reader` supplies what the dialects spell differently: a
list parameter, time parameters and the times it returns.

Reads the stores' tables as their modules define them (`gateway.anomalies.store`,
`gateway.cases.schema`, and their PostgreSQL twins in `gateway.cluster`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString, Protocol

import psycopg
from psycopg.rows import TupleRow

from ..anomalies.model import Anomaly
from ..anomalies.store import AnomalyStore
from ..cases.model import Case, case_from_json
from ..cases.store import CaseStore
from ..cluster.pg_schema import PgBackend


class Reader(Protocol):
    """A connection of the reports' own and its dialect."""

    def rows(self, sql: LiteralString, args: Sequence[object]) -> list[tuple[Any, ...]]:
        """The rows of `sql`, whose parameters are written `?`."""

    def among(self, column: LiteralString) -> LiteralString:
        """The condition: `column` is one of the list given as the next parameter."""

    def listed(self, values: Collection[object]) -> object:
        """The list parameter of `among`."""

    def time(self, moment: datetime) -> object:
        """A time parameter, compared with the stores' time columns."""

    def moment(self, value: Any) -> datetime:
        """A time read from a time column, in UTC."""


class SqliteReader:
    """A store's SQLite file: times in the indexed columns are UTC text that sorts as time."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def rows(self, sql: LiteralString, args: Sequence[object]) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    def among(self, column: LiteralString) -> LiteralString:
        return column + " IN (SELECT value FROM json_each(?))"  # one parameter, however many

    def listed(self, values: Collection[object]) -> object:
        return json.dumps(list(values))

    def time(self, moment: datetime) -> object:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def moment(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).astimezone(UTC)


class PgReader:
    """A store in PostgreSQL: timestamptz columns, lists as arrays."""

    def __init__(self, conn: psycopg.Connection[TupleRow]) -> None:
        self._conn = conn

    def rows(self, sql: LiteralString, args: Sequence[object]) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql.replace("?", "%s"), args).fetchall()

    def among(self, column: LiteralString) -> LiteralString:
        return column + " = ANY(?)"

    def listed(self, values: Collection[object]) -> object:
        return list(values)

    def time(self, moment: datetime) -> object:
        return moment

    def moment(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"a timestamptz column gave {value!r}")
        return value.astimezone(UTC)


@contextmanager
def read_only(path: Path | str) -> Iterator[SqliteReader]:
    """A read-only connection to the SQLite file at `path` (never creates or writes it)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        yield SqliteReader(db)


@contextmanager
def pg_read_only(dsn: str) -> Iterator[PgReader]:
    """A connection of its own to PostgreSQL, in one read-only REPEATABLE READ transaction
    (rolled back at the end: nothing to commit)."""
    with psycopg.connect(dsn, application_name="pollution-gateway reports") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            yield PgReader(conn)
        finally:
            conn.rollback()


def source(store: AnomalyStore | CaseStore) -> AbstractContextManager[Reader]:
    """A reader of `store`'s tables where its backend keeps them: PostgreSQL, or the file."""
    # AnomalyStore and PgBackend keep the backend and the DSN (with its password) private
    backend: object = store.backend if isinstance(store, CaseStore) else store._backend
    if isinstance(backend, PgBackend):
        return pg_read_only(backend._dsn)
    return read_only(store.path)


def _anomalies(db: Reader, where: LiteralString, args: list[object]) -> list[Anomaly]:
    rows = db.rows("SELECT body FROM anomaly WHERE " + where + " ORDER BY started_at, id", args)
    return [Anomaly.from_json(json.loads(r[0])) for r in rows]


def _scope(db: Reader, enterprises: Collection[str] | None) -> tuple[LiteralString, list[object]]:
    if enterprises is None:
        return "", []
    return " AND " + db.among("enterprise"), [db.listed(sorted(set(enterprises)))]


def _ids(db: Reader, values: Collection[object]) -> object:
    return db.listed(sorted({str(v) for v in values}))


def started_between(
    db: Reader, enterprises: Collection[str] | None, start: datetime, end: datetime
) -> list[Anomaly]:
    """The anomalies of `enterprises` (None: every one) that started in `[start, end)`."""
    scope, args = _scope(db, enterprises)
    return _anomalies(
        db, "started_at >= ? AND started_at < ?" + scope, [db.time(start), db.time(end), *args]
    )


def overlapping(
    db: Reader,
    enterprises: Collection[str] | None,
    start: datetime,
    end: datetime,
    family: str,
) -> list[Anomaly]:
    """The anomalies of `family` of `enterprises` that overlap `[start, end)` (an open one
    reaches to now)."""
    scope, args = _scope(db, enterprises)
    where = "family = ? AND started_at < ? AND (ended_at IS NULL OR ended_at >= ?)" + scope
    return _anomalies(db, where, [family, db.time(end), db.time(start), *args])


def types_of(db: Reader, anomaly_ids: Collection[str]) -> dict[str, str]:
    """Anomaly id -> its type, for the ids that are stored."""
    rows = db.rows("SELECT id, type FROM anomaly WHERE " + db.among("id"), [_ids(db, anomaly_ids)])
    return {str(i): str(t) for i, t in rows}


def cases_of(db: Reader, anomaly_ids: Collection[str]) -> dict[str, Case]:
    """Anomaly id -> its case now, for the ids that have one (each case read once)."""
    rows = db.rows(
        "SELECT ca.anomaly_id, ca.case_id, cf.body FROM case_anomaly ca"
        " JOIN case_file cf ON cf.id = ca.case_id WHERE " + db.among("ca.anomaly_id"),
        [_ids(db, anomaly_ids)],
    )
    parsed: dict[int, Case] = {}
    out: dict[str, Case] = {}
    for anomaly_id, case_id, body in rows:
        case = parsed.get(case_id)
        if case is None:
            case = parsed[case_id] = case_from_json(json.loads(body))
        out[str(anomaly_id)] = case
    return out


def opened_between(
    db: Reader, start: datetime, end: datetime, enterprises: Collection[str] | None
) -> list[Case]:
    """Every case opened in `[start, end)` of `enterprises` (None: every one), oldest first."""
    scope, args = _scope(db, enterprises)
    rows = db.rows(
        "SELECT body FROM case_file WHERE opened_at >= ? AND opened_at < ?"
        + scope
        + " ORDER BY id",
        [db.time(start), db.time(end), *args],
    )
    return [case_from_json(json.loads(r[0])) for r in rows]


def histories(db: Reader, case_ids: Collection[int]) -> dict[int, list[tuple[datetime, str]]]:
    """Case id -> its history as (at, action), oldest first."""
    rows = db.rows(
        "SELECT case_id, at, action FROM case_step WHERE "
        + db.among("case_id")
        + " ORDER BY case_id, seq",
        [db.listed(sorted({int(c) for c in case_ids}))],
    )
    out: dict[int, list[tuple[datetime, str]]] = {}
    for case_id, at, action in rows:
        out.setdefault(int(case_id), []).append((db.moment(at), str(action)))
    return out
