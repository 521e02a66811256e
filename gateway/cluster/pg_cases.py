"""The case store's backend in PostgreSQL, shared by every node of a cluster.

The same tables as the SQLite file (`gateway.cases.schema`), with case ids and history
`seq` from identity columns and times as timestamptz. A change locks the rows it reads
(``SELECT ... FOR UPDATE``), so an action on a case another node is changing waits for
that commit and is judged on the state it left (`Conflict` when that state no longer
allows it). Openings and joins also take one advisory lock first, so two nodes' listeners
hearing the same anomaly event (a replay after a take-over) open one case: the second finds
the first's. `case_anomaly.anomaly_id` is the primary key besides: an anomaly is in one case
at most. History rows cannot be updated, deleted or truncated: triggers raise. An action's
audit callback runs inside the change's transaction, on its connection for a `PgAudit` of
the same DSN (`pg_audit.joined`): the change and its audit entry commit together. Nothing is
kept in memory, so there is nothing to notify.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from datetime import date, datetime
from typing import LiteralString

import psycopg
from psycopg.rows import TupleRow

from ..cases.backend import DONE_STATES, CaseChange, CaseFilter, Step
from ..cases.model import STATES, Case
from .pg_audit import joined
from .pg_schema import PgBackend, PgMigration

INDEX_LOCK = 0x6761_7465_7761_7902  # pg_advisory_xact_lock key of openings and joins

_APPEND_ONLY = (
    "CREATE FUNCTION case_step_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION USING MESSAGE = 'case history is append-only: rows cannot be '"
    " || CASE TG_OP WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END; END $$"
)

MIGRATIONS: list[PgMigration] = [
    (
        1,
        (
            "CREATE TABLE case_file (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " enterprise text NOT NULL, day date NOT NULL, state text NOT NULL,"
            " level text NOT NULL, assignee text, deadline timestamptz,"
            " opened_at timestamptz NOT NULL, body text NOT NULL)",
            "CREATE INDEX case_enterprise ON case_file (enterprise, day)",
            "CREATE INDEX case_state ON case_file (state, deadline)",
            "CREATE INDEX case_level ON case_file (level, state)",
            "CREATE INDEX case_opened ON case_file (opened_at)",
            "CREATE TABLE case_anomaly (anomaly_id text PRIMARY KEY,"
            " case_id bigint NOT NULL REFERENCES case_file (id))",
            "CREATE INDEX case_anomaly_case ON case_anomaly (case_id)",
            "CREATE TABLE case_step (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " case_id bigint NOT NULL REFERENCES case_file (id), at timestamptz NOT NULL,"
            " actor text NOT NULL, actor_role text NOT NULL, action text NOT NULL,"
            " from_state text, to_state text NOT NULL, details text NOT NULL)",
            "CREATE INDEX case_step_case ON case_step (case_id, seq)",
            _APPEND_ONLY,
            "CREATE TRIGGER case_step_no_change BEFORE UPDATE OR DELETE ON case_step"
            " FOR EACH ROW EXECUTE FUNCTION case_step_append_only()",
            "CREATE TRIGGER case_step_no_truncate BEFORE TRUNCATE ON case_step"
            " FOR EACH STATEMENT EXECUTE FUNCTION case_step_append_only()",
        ),
    )
]

_COLUMNS: dict[str, LiteralString] = {
    "state": "state",
    "level": "level",
    "enterprise": "enterprise",
    "assignee": "assignee",
}
_STEP_COLUMNS: LiteralString = (
    "seq, case_id, at, actor, actor_role, action, from_state, to_state, details"
)
_LATE: LiteralString = "(deadline IS NOT NULL AND deadline < %s AND state <> ALL(%s))"
_STILL_OPEN = [s for s in STATES if s not in DONE_STATES]


class PgCases(PgBackend):
    """`CaseBackend` on PostgreSQL; the schema is created or migrated on opening."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, "case store", MIGRATIONS, "gateway_cases")

    @contextlib.contextmanager
    def change(self) -> Iterator[CaseChange]:
        with self._link.session() as conn, conn.transaction(), joined(self._dsn, conn):
            yield _Change(conn)  # an entry of PgAudit commits with it

    def body(self, case_id: int) -> str | None:
        with self._link.session() as conn:
            return _one(conn, "SELECT body FROM case_file WHERE id = %s", case_id)

    def body_of(self, anomaly_id: str) -> str | None:
        with self._link.session() as conn:
            return _one(
                conn,
                "SELECT cf.body FROM case_anomaly ca JOIN case_file cf ON cf.id = ca.case_id"
                " WHERE ca.anomaly_id = %s",
                anomaly_id,
            )

    def history(self, case_id: int) -> list[Step]:
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT " + _STEP_COLUMNS + " FROM case_step WHERE case_id = %s ORDER BY seq",
                (case_id,),
            ).fetchall()
        return [Step.of(row) for row in rows]

    def query(self, where: CaseFilter, limit: int, offset: int) -> tuple[list[str], int]:
        terms: list[LiteralString] = []
        args: list[object] = []
        if where.enterprises is not None:
            terms.append("enterprise = ANY(%s)")
            args.append(where.enterprises)
        for column, value in where.columns.items():
            terms.append(_COLUMNS[column] + " = %s")
            args.append(value)
        if where.overdue is not None:
            terms.append(_LATE if where.overdue else "NOT " + _LATE)
            args += [where.now, DONE_STATES]
        clause: LiteralString = (" WHERE " + " AND ".join(terms)) if terms else ""
        with self._link.session() as conn:
            counted = conn.execute("SELECT count(*) FROM case_file" + clause, args).fetchone()
            rows = conn.execute(
                "SELECT body FROM case_file" + clause + " ORDER BY id DESC LIMIT %s OFFSET %s",
                [*args, limit, offset],
            ).fetchall()
        return [str(r[0]) for r in rows], int(counted[0]) if counted else 0

    def count(self) -> int:
        with self._link.session() as conn:
            row = conn.execute("SELECT count(*) FROM case_file").fetchone()
        return int(row[0]) if row else 0

    def opened_between(
        self, start: datetime, end: datetime, enterprises: Collection[str] | None
    ) -> list[str]:
        where: LiteralString = "opened_at >= %s AND opened_at < %s"
        args: list[object] = [start, end]
        if enterprises is not None:
            where += " AND enterprise = ANY(%s)"
            args.append(sorted(enterprises))
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT body FROM case_file WHERE " + where + " ORDER BY id", args
            ).fetchall()
        return [str(r[0]) for r in rows]

    def overdue_or_unsigned(
        self, now: datetime, since: datetime, unsigned_before: datetime
    ) -> list[str]:
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT body FROM case_file WHERE id IN ("
                " SELECT id FROM case_file WHERE state = ANY(%s)"
                " AND deadline >= %s AND deadline < %s"
                " UNION SELECT id FROM case_file WHERE state = 'new' AND level = 'alarm'"
                " AND opened_at >= %s AND opened_at < %s"
                " AND coalesce(jsonb_typeof(body::jsonb -> 'answer'), 'null') = 'null'"
                ") ORDER BY id",
                (_STILL_OPEN, since, now, since, unsigned_before),
            ).fetchall()
        return [str(r[0]) for r in rows]


class _Change:
    """`CaseChange` inside one PostgreSQL transaction; the cases it reads are locked."""

    def __init__(self, conn: psycopg.Connection[TupleRow]) -> None:
        self._conn = conn

    def lock_index(self) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))

    def body(self, case_id: int) -> str | None:
        return _one(self._conn, "SELECT body FROM case_file WHERE id = %s FOR UPDATE", case_id)

    def case_id_of(self, anomaly_id: str) -> int | None:
        row = self._conn.execute(
            "SELECT case_id FROM case_anomaly WHERE anomaly_id = %s", (anomaly_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    def same_day(self, enterprise: str, day: date) -> str | None:
        row = self._conn.execute(
            "SELECT body FROM case_file WHERE enterprise = %s AND day = %s"
            " AND state <> ALL(%s) ORDER BY id DESC LIMIT 1 FOR UPDATE",
            (enterprise, day, DONE_STATES),
        ).fetchone()
        return None if row is None else str(row[0])

    def insert(self, case: Case) -> int:
        row = self._conn.execute(
            "INSERT INTO case_file (enterprise, day, state, opened_at, level, body)"
            " VALUES (%s, %s, %s, %s, %s, '{}') RETURNING id",
            (case.enterprise, case.day, case.state, case.opened_at, case.level),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def save(self, case: Case, body: str) -> None:
        self._conn.execute(
            "UPDATE case_file SET state = %s, level = %s, assignee = %s, deadline = %s,"
            " body = %s WHERE id = %s",
            (case.state, case.level, case.assignee, case.deadline, body, case.id),
        )

    def index(self, anomaly_id: str, case_id: int) -> None:
        self._conn.execute(
            "INSERT INTO case_anomaly (anomaly_id, case_id) VALUES (%s, %s)",
            (anomaly_id, case_id),
        )

    def unindex(self, anomaly_id: str) -> None:
        self._conn.execute("DELETE FROM case_anomaly WHERE anomaly_id = %s", (anomaly_id,))

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
        self._conn.execute(
            "INSERT INTO case_step (case_id, at, actor, actor_role, action, from_state,"
            " to_state, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (case_id, at, actor, actor_role, action, from_state, to_state, details),
        )


def _one(conn: psycopg.Connection[TupleRow], sql: LiteralString, key: object) -> str | None:
    row = conn.execute(sql, (key,)).fetchone()
    return None if row is None else str(row[0])
