"""The audit log: who changed what in the control regime and the registry, when, from what to
what. Its own SQLite file (``audit.sqlite`` in the data folder), append-only; or PostgreSQL,
shared by the nodes of a cluster (`gateway.cluster.pg_audit`), with the same entries.

One row per state-changing call: `seq` (ascending, never reused), `at` (UTC, ISO 8601 with
its offset), the actor's account name and role, the `action`, the `target` id, the record
`before` and `after` it (JSON, null where there is none), the `reason` the actor gave and the
client's address. Actions are named ``<what>.<verb>``; the API records ``alert.issue``,
``alert.withdraw``, ``order.issue``, ``order.withdraw`` and ``registry.reload`` (refused
reloads too, with their problems); the daemon records ``registry.reload`` on SIGHUP and
``accounts.reload`` (the names added, removed and changed) when the accounts file changes.

Append-only down to SQL: triggers abort every UPDATE and DELETE of a row, and an INSERT that
would replace one (``INSERT OR REPLACE`` deletes without firing delete triggers), whoever
issues them, so the record cannot be edited through SQLite either. Someone who can write the
file itself can still drop the triggers or replace it: keep backups elsewhere.

Unbounded on purpose: an audit log is never pruned. Each action adds a few hundred bytes
(more for an alert naming many enterprises), so even thousands of actions a day stay within
megabytes a year. It is one of the stores ``pollution-gateway backup`` copies.

The file's schema is versioned (``PRAGMA user_version``, see `gateway.migrations`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import AwareDatetime, BaseModel, Field, PlainSerializer, WithJsonSchema

from .migrations import Migration, open_store

_SCHEMA_V1 = """
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    before TEXT,
    after TEXT,
    reason TEXT,
    client TEXT
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, seq);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_target ON audit (target, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be changed');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted');
END;
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be replaced');
END;
"""

# (version, step) in order; append a step for every change of the schema, never edit one
MIGRATIONS: list[Migration] = [(1, _SCHEMA_V1)]
SCHEMA_VERSION = MIGRATIONS[-1][0]

UtcTime = Annotated[
    AwareDatetime,
    PlainSerializer(lambda t: t.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class AuditEntry(BaseModel):
    """One recorded action."""

    seq: int = Field(description="ascending in the order of recording, never reused")
    at: UtcTime = Field(description="when it was recorded (UTC, ISO 8601 with offset)")
    actor: str = Field(description="account name of the caller")
    actor_role: str = Field(description="the account's role at the time")
    action: str = Field(description="e.g. alert.issue, order.withdraw, registry.reload")
    target: str | None = Field(description="id of what it acted on; null for none")
    before: Any = Field(description="the record before the action; null when there was none")
    after: Any = Field(description="the record after the action; null when there is none")
    reason: str | None = Field(description="the reason the actor gave; null for none")
    client: str | None = Field(description="the client's network address, when known")


def _utc(at: datetime) -> datetime:
    """`at` in UTC; a naive time is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"audit times must be timezone-aware, got {at.isoformat()}")
    return at.astimezone(UTC)


def _utc_text(at: datetime) -> str:
    """UTC, fixed width (microseconds always), so that text order is time order."""
    return _utc(at).isoformat(timespec="microseconds")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry to append: its time in UTC, `before` and `after` as JSON text."""

    at: datetime
    actor: str
    actor_role: str
    action: str
    target: str | None
    before: str | None
    after: str | None
    reason: str | None
    client: str | None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """The filters of `AuditLog.query`, all to match (None: any); times in UTC."""

    actor: str | None
    action: str | None
    target: str | None
    since: datetime | None  # inclusive
    until: datetime | None  # exclusive


# (seq, at, actor, actor_role, action, target, before JSON, after JSON, reason, client)
AuditRow = tuple[
    int, datetime, str, str, str, str | None, str | None, str | None, str | None, str | None
]


class AuditBackend(Protocol):
    """Where an `AuditLog` keeps its entries: this module's SQLite file, or PostgreSQL
    (`gateway.cluster.pg_audit`) shared by several processes."""

    @property
    def path(self) -> Path | str:
        """The SQLite file, or where PostgreSQL is (no password)."""

    def append(self, draft: Draft) -> int:
        """Append one entry, committed when it returns (or with the transaction it joins);
        its seq."""

    def query(self, where: AuditFilter, limit: int, offset: int) -> tuple[list[AuditRow], int]:
        """The matching rows, highest seq first, and how many match in all."""

    def count(self) -> int: ...
    def close(self) -> None: ...


class SqliteAudit:
    """The audit log's SQLite file, written by this process alone."""

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written by
        a newer release."""
        self.path = path
        # FULL: a recorded action survives a power cut
        self._db = open_store(path, "audit log", MIGRATIONS, "FULL")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def append(self, draft: Draft) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO audit (at, actor, actor_role, action, target, before, after,"
                " reason, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _utc_text(draft.at),
                    draft.actor,
                    draft.actor_role,
                    draft.action,
                    draft.target,
                    draft.before,
                    draft.after,
                    draft.reason,
                    draft.client,
                ),
            )
            seq = cursor.lastrowid
        assert seq is not None
        return seq

    def query(self, where: AuditFilter, limit: int, offset: int) -> tuple[list[AuditRow], int]:
        terms: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("actor", where.actor),
            ("action", where.action),
            ("target", where.target),
        ):
            if value is not None:
                terms.append(f"{column} = ?")
                params.append(value)
        if where.since is not None:
            terms.append("at >= ?")
            params.append(_utc_text(where.since))
        if where.until is not None:
            terms.append("at < ?")
            params.append(_utc_text(where.until))
        clause = f" WHERE {' AND '.join(terms)}" if terms else ""
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM audit{clause}", params).fetchone()[0]
            rows = self._db.execute(
                "SELECT seq, at, actor, actor_role, action, target, before, after, reason,"
                f" client FROM audit{clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [(r[0], datetime.fromisoformat(r[1]), *r[2:]) for r in rows], int(total)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM audit").fetchone()[0])


class AuditLog:
    """The append-only log of actions (see the module's docstring)."""

    def __init__(self, where: Path | str | AuditBackend) -> None:
        """Open the log: a SQLite file's path (created, its schema migrated; `StateError` when
        written by a newer release), or a backend such as PostgreSQL's."""
        backend = SqliteAudit(where) if isinstance(where, Path | str) else where
        self._backend: AuditBackend = backend
        self.path = backend.path

    def close(self) -> None:
        self._backend.close()

    def record(
        self,
        *,
        actor: str,
        actor_role: str,
        action: str,
        target: str | None = None,
        before: Any = None,
        after: Any = None,
        reason: str | None = None,
        client: str | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append one action (`before` and `after` JSON-serialisable, None for none); `at`
        defaults to now. Committed when it returns, or with the PostgreSQL transaction of
        the regime change it records (`gateway.cluster.pg_audit`)."""
        if not actor or not action:
            raise ValueError("an audit entry needs an actor and an action")
        when = _utc(at if at is not None else datetime.now(UTC))
        draft = Draft(
            when, actor, actor_role, action, target, _json(before), _json(after), reason, client
        )
        seq = self._backend.append(draft)
        return _entry(
            (
                seq,
                when,
                actor,
                actor_role,
                action,
                target,
                draft.before,
                draft.after,
                reason,
                client,
            )
        )

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[AuditEntry], int]:
        """The entries matching every filter given, newest first, and how many match in all.
        `since` is inclusive, `until` exclusive."""
        where = AuditFilter(
            actor,
            action,
            target,
            None if since is None else _utc(since),
            None if until is None else _utc(until),
        )
        rows, total = self._backend.query(where, limit, offset)
        return [_entry(row) for row in rows], total

    def __len__(self) -> int:
        return self._backend.count()


def _entry(row: AuditRow) -> AuditEntry:
    seq, at, actor, actor_role, action, target, before, after, reason, client = row
    return AuditEntry(
        seq=seq,
        at=at.astimezone(UTC),
        actor=actor,
        actor_role=actor_role,
        action=action,
        target=target,
        before=None if before is None else json.loads(before),
        after=None if after is None else json.loads(after),
        reason=reason,
        client=client,
    )


def accounts_recorder(audit: AuditLog, target: str) -> Callable[[dict[str, list[str]]], None]:
    """What `Accounts.on_reload` calls: one `accounts.reload` entry per change of the file."""

    def record(change: dict[str, list[str]]) -> None:
        audit.record(
            actor="accounts file",
            actor_role="system",
            action="accounts.reload",
            target=target,
            after=change,
        )

    return record
