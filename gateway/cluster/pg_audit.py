"""The audit log's backend in PostgreSQL, shared by every node of a cluster.

The same entries and reads as the SQLite file (`gateway.audit`). `seq` is an identity column:
ascending and never reused, but a transaction that rolls back leaves its number unused, so
the sequence can skip. Append-only down to SQL: statement triggers raise on every UPDATE,
DELETE and TRUNCATE of `audit`, whoever issues them (an INSERT cannot replace a row: `seq`
is generated, and a duplicate would break the primary key). The table's owner, or a
superuser, can still drop or disable the triggers: keep backups elsewhere.

A regime change through `gateway.cluster.pg_regime` calls its audit callback inside its
transaction, within `joined(dsn, conn)`: an entry a `PgAudit` of the same DSN appends there
is inserted on that connection, so the change and its entry commit together or not at all.
Elsewhere (registry and accounts reloads) an entry is its own transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import LiteralString

import psycopg
from psycopg.rows import TupleRow

from ..audit import AuditFilter, AuditRow, Draft
from .pg_schema import PgBackend, PgMigration

CHANNEL = "gateway_audit"  # never notified: the log is read on request

MIGRATIONS: list[PgMigration] = [
    (
        1,
        (
            "CREATE TABLE audit (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " at timestamptz NOT NULL, actor text NOT NULL, actor_role text NOT NULL,"
            " action text NOT NULL, target text, before json, after json, reason text,"
            " client text)",
            "CREATE INDEX audit_at ON audit (at)",
            "CREATE INDEX audit_actor ON audit (actor, seq)",
            "CREATE INDEX audit_action ON audit (action, seq)",
            "CREATE INDEX audit_target ON audit (target, seq)",
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'the audit log is append-only: rows cannot be %',"
            " CASE TG_OP WHEN 'UPDATE' THEN 'changed' WHEN 'DELETE' THEN 'deleted'"
            " ELSE 'truncated' END USING ERRCODE = 'insufficient_privilege'; END $$",
            "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
            "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
            "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
        ),
    )
]

Connection = psycopg.Connection[TupleRow]

# (DSN, connection in a transaction) that audit entries of that DSN join, if any
_joined: ContextVar[tuple[str, Connection] | None] = ContextVar("pg_audit_joined", default=None)


@contextlib.contextmanager
def joined(dsn: str, conn: Connection) -> Iterator[None]:
    """Within it (this thread or task), a `PgAudit` of `dsn` appends on `conn`, in the
    transaction open there."""
    token = _joined.set((dsn, conn))
    try:
        yield
    finally:
        _joined.reset(token)


class AuditClosed(psycopg.InterfaceError):
    """The log was closed: nothing more is recorded through it."""


class PgAudit(PgBackend):
    """`AuditBackend` on PostgreSQL; the schema is created or migrated on opening."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, "audit log", MIGRATIONS, CHANNEL)
        self._closed = False

    def close(self) -> None:
        self._closed = True  # the link would open itself again: refuse instead
        super().close()

    def append(self, draft: Draft) -> int:
        self._check_open()
        within = _joined.get()
        if within is not None and within[0] == self._dsn:
            return _insert(within[1], draft)
        with self._link.session() as conn:
            return _insert(conn, draft)

    def query(self, where: AuditFilter, limit: int, offset: int) -> tuple[list[AuditRow], int]:
        self._check_open()
        terms: list[LiteralString] = []
        args: list[object] = []
        for term, value in (
            ("actor = %s", where.actor),
            ("action = %s", where.action),
            ("target = %s", where.target),
            ("at >= %s", where.since),
            ("at < %s", where.until),
        ):
            if value is not None:
                terms.append(term)
                args.append(value)
        clause: LiteralString = (" WHERE " + " AND ".join(terms)) if terms else ""
        with self._link.session() as conn:
            counted = conn.execute("SELECT count(*) FROM audit" + clause, args).fetchone()
            rows = conn.execute(
                "SELECT seq, at, actor, actor_role, action, target, before::text, after::text,"
                " reason, client FROM audit" + clause + " ORDER BY seq DESC LIMIT %s OFFSET %s",
                [*args, limit, offset],
            ).fetchall()
        total = int(counted[0]) if counted else 0
        return [
            (int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows
        ], total

    def count(self) -> int:
        self._check_open()
        with self._link.session() as conn:
            row = conn.execute("SELECT count(*) FROM audit").fetchone()
        return int(row[0]) if row else 0

    def _check_open(self) -> None:
        if self._closed:
            raise AuditClosed(f"the audit log at {self.path} is closed")


def _insert(conn: Connection, draft: Draft) -> int:
    row = conn.execute(
        "INSERT INTO audit (at, actor, actor_role, action, target, before, after, reason,"
        " client) VALUES (%s, %s, %s, %s, %s, %s::json, %s::json, %s, %s) RETURNING seq",
        (
            draft.at,
            draft.actor,
            draft.actor_role,
            draft.action,
            draft.target,
            draft.before,
            draft.after,
            draft.reason,
            draft.client,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])
