"""The audit log behaves the same on SQLite and on PostgreSQL: entries, filters, paging, a
restart, append-only down to SQL, and a regime change the log cannot record is not made.

Then PostgreSQL's own: a regime change and its audit entry are one transaction (neither is
seen before both commit, and an entry of a change that rolls back is rolled back with it),
two nodes share one log, and the schema is versioned. A real PostgreSQL: a missing server is
an error, never a skip.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devkit import localstack
from gateway.audit import AuditLog
from gateway.cluster.pg_audit import PgAudit
from gateway.cluster.pg_regime import PgRegime
from gateway.migrations import StateError
from gateway.regime import Regime
from gateway.regime.model import Order, OrderSpec

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 4, 5, 9, 0, tzinfo=CST)
M = timedelta(minutes=1)


@dataclass
class Backend:
    """Opens the log and the regime (again: a restart) on one backend, and runs SQL on the
    log's tables as someone else would, past the gateway."""

    kind: str
    open_log: Callable[[], AuditLog]
    open_regime: Callable[[], Regime]
    tamper: Callable[[str], None]
    error: type[Exception]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[AuditLog | Regime] = []

    def keep(thing: Any) -> Any:
        opened.append(thing)
        return thing

    if request.param == "sqlite":
        path = tmp_path / "audit.sqlite"

        def tamper(statement: str) -> None:
            db = sqlite3.connect(path, isolation_level=None)
            try:
                db.execute(statement)
            finally:
                db.close()

        yield Backend(
            "sqlite",
            lambda: keep(AuditLog(path)),
            lambda: keep(Regime(tmp_path / "regime.sqlite")),
            tamper,
            sqlite3.DatabaseError,
        )
    else:
        dsn = request.getfixturevalue("pg_dsn")

        def tamper(statement: str) -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(statement.encode())

        yield Backend(
            "postgres",
            lambda: keep(AuditLog(PgAudit(dsn))),
            lambda: keep(Regime(PgRegime(dsn))),
            tamper,
            psycopg.Error,
        )
    for thing in opened:
        thing.close()


def order_spec(enterprise: str = "E1") -> OrderSpec:
    return OrderSpec(kind="shutdown", enterprise=enterprise, starts_at=T0, ends_at=T0 + 60 * M)


def issued_by(log: AuditLog, actor: str = "chief") -> Callable[[Order], None]:
    """The audit callback of an issued order, as the API's control routes write it."""

    def record(order: Order) -> None:
        log.record(
            actor=actor,
            actor_role="admin",
            action="order.issue",
            target=order.id,
            after=order.model_dump(mode="json"),
            client="10.0.0.7",
            at=T0,
        )

    return record


# -- the contract -----------------------------------------------------------------------------


def test_entries_survive_a_restart_and_times_must_be_aware(backend: Backend) -> None:
    log = backend.open_log()
    entry = log.record(
        actor="chief",
        actor_role="admin",
        action="order.issue",
        target="o1",
        before=None,
        after={"note": "停产令", "lines": [], "nested": {"b": 2, "a": [1.5, None, True]}},
        reason="重污染预警",
        client="10.0.0.7",
        at=T0,
    )
    assert entry.seq == 1 and entry.at == T0 and entry.at.tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        log.record(actor="chief", actor_role="admin", action="x", at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="actor"):
        log.record(actor="", actor_role="admin", action="x")
    with pytest.raises(ValueError, match="timezone-aware"):
        log.query(since=datetime(2025, 1, 1))
    log.close()
    again = backend.open_log()
    assert again.query() == ([entry], 1)
    (kept,) = again.query()[0]
    assert kept.at.tzinfo == UTC and kept.after["note"] == "停产令" and kept.before is None
    later = again.record(actor="a", actor_role="admin", action="y")
    assert later.seq == 2 and later.at.tzinfo == UTC
    assert len(again) == 2


def test_the_log_filters_and_pages_newest_first(backend: Backend) -> None:
    log = backend.open_log()
    for minute in range(5):
        log.record(
            actor="chief" if minute % 2 == 0 else "deputy",
            actor_role="admin",
            action="order.issue",
            target=f"o{minute}",
            at=T0 + minute * M,
        )
    log.record(actor="deputy", actor_role="admin", action="order.withdraw", target="o0", at=T0)
    everything, total = log.query()
    assert total == 6 and [e.seq for e in everything] == [6, 5, 4, 3, 2, 1]
    assert log.query(actor="chief")[1] == 3 and log.query(actor="deputy")[1] == 3
    assert log.query(action="order.withdraw")[1] == 1
    assert [e.action for e in log.query(target="o0")[0]] == ["order.withdraw", "order.issue"]
    window, _ = log.query(since=T0 + M, until=T0 + 3 * M)  # until is exclusive
    assert [e.target for e in window] == ["o2", "o1"]
    # the same instant in another offset bounds the same
    assert log.query(since=(T0 + 4 * M).astimezone(UTC))[1] == 1
    paged, total = log.query(limit=2, offset=1)
    assert total == 6 and [e.seq for e in paged] == [5, 4]
    assert log.query(actor="chief", action="order.withdraw") == ([], 0)
    assert log.query(offset=10) == ([], 6)


def test_the_log_cannot_be_changed_or_deleted_through_sql(backend: Backend) -> None:
    log = backend.open_log()
    log.record(actor="chief", actor_role="admin", action="alert.issue", target="a1", at=T0)
    log.record(actor="chief", actor_role="admin", action="order.issue", target="o1", at=T0)
    before = log.query()
    statements = [
        "UPDATE audit SET actor = 'nobody'",
        "UPDATE audit SET after = NULL WHERE seq = 1",
        "DELETE FROM audit",
        "DELETE FROM audit WHERE seq = 2",
    ]
    if backend.kind == "sqlite":
        statements.append(
            "INSERT OR REPLACE INTO audit (seq, at, actor, actor_role, action)"
            " VALUES (1, '2025-01-01T00:00:00.000000+00:00', 'x', 'admin', 'alert.issue')"
        )
    else:
        statements += [
            "TRUNCATE audit",
            "INSERT INTO audit (at, actor, actor_role, action) VALUES (now(), 'x', 'admin', 'y')"
            " ON CONFLICT (seq) DO UPDATE SET actor = 'x'",
        ]
    for statement in statements:
        with pytest.raises(backend.error, match="append-only"):
            backend.tamper(statement)
    if backend.kind == "postgres":  # no row can be given a seq of one already there
        with pytest.raises(psycopg.errors.UniqueViolation):
            backend.tamper(
                "INSERT INTO audit (seq, at, actor, actor_role, action) OVERRIDING SYSTEM VALUE"
                " VALUES (1, now(), 'x', 'admin', 'alert.issue')"
            )
    assert log.query() == before and len(log) == 2


def test_a_regime_change_is_recorded_and_one_the_log_cannot_record_is_not_made(
    backend: Backend,
) -> None:
    log = backend.open_log()
    regime = backend.open_regime()
    order = regime.add_order(order_spec(), issued_by="chief", audit=issued_by(log))
    (entry,) = log.query(target=order.id)[0]
    assert entry.after == order.model_dump(mode="json") and entry.actor == "chief"
    log.close()  # every write to it fails from here on
    with pytest.raises(Exception, match="closed"):
        regime.add_order(order_spec("E2"), issued_by="chief", audit=issued_by(log))
    assert [o.id for o in regime.list_orders()] == [order.id]
    regime.close()
    again = backend.open_regime()  # nor stored
    assert [o.id for o in again.list_orders()] == [order.id]
    reopened = backend.open_log()
    assert len(reopened) == 1


# -- PostgreSQL: the change and its entry in one transaction ------------------------------------


def counts(dsn: str) -> tuple[int, int]:
    """(orders, audit entries) as another connection sees them: what is committed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        orders = conn.execute("SELECT count(*) FROM regime_order").fetchone()
        entries = conn.execute("SELECT count(*) FROM audit").fetchone()
    assert orders is not None and entries is not None
    return int(orders[0]), int(entries[0])


def test_a_regime_change_and_its_entry_commit_together(pg_dsn: str) -> None:
    log = AuditLog(PgAudit(pg_dsn))
    regime = Regime(PgRegime(pg_dsn))
    seen_inside: list[tuple[int, int]] = []
    record = issued_by(log)

    def audit(order: Order) -> None:
        record(order)
        seen_inside.append(counts(pg_dsn))  # recorded, not yet committed

    try:
        order = regime.add_order(order_spec(), issued_by="chief", audit=audit)
        assert seen_inside == [(0, 0)]  # neither visible before the commit ...
        assert counts(pg_dsn) == (1, 1)  # ... both after it

        def withdrawal(before: Order, after: Order) -> None:
            log.record(
                actor="chief",
                actor_role="admin",
                action="order.withdraw",
                target=after.id,
                before=before.model_dump(mode="json"),
                after=after.model_dump(mode="json"),
                at=T0 + M,
            )
            seen_inside.append(counts(pg_dsn))

        regime.withdraw_order(order.id, by="chief", at=T0 + M, audit=withdrawal)
        assert seen_inside[1] == (1, 1) and counts(pg_dsn) == (1, 2)
        withdrawn, issued = log.query(target=order.id)[0]
        assert withdrawn.after["withdrawn_by"] == "chief" and issued.action == "order.issue"
    finally:
        regime.close()
        log.close()


def test_an_entry_of_a_change_that_rolls_back_is_rolled_back_with_it(pg_dsn: str) -> None:
    log = AuditLog(PgAudit(pg_dsn))
    regime = Regime(PgRegime(pg_dsn))
    record = issued_by(log)

    def recorded_then_failed(order: Order) -> None:
        record(order)  # the entry is written ...
        raise RuntimeError("the change fails after its entry was written")

    try:
        with pytest.raises(RuntimeError):
            regime.add_order(order_spec(), issued_by="chief", audit=recorded_then_failed)
        assert counts(pg_dsn) == (0, 0)  # ... and goes with the change
        assert regime.list_orders() == [] and log.query() == ([], 0)
        # the database refusing the entry refuses the change
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE audit ADD CONSTRAINT refuses_e9 CHECK (actor <> 'refused') NOT VALID"
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            regime.add_order(order_spec(), issued_by="chief", audit=issued_by(log, "refused"))
        assert counts(pg_dsn) == (0, 0)
        kept = regime.add_order(order_spec(), issued_by="chief", audit=issued_by(log))
        assert counts(pg_dsn) == (1, 1) and [o.id for o in regime.list_orders()] == [kept.id]
        assert [e.target for e in log.query()[0]] == [kept.id]
    finally:
        regime.close()
        log.close()


def test_a_log_on_another_database_writes_on_its_own(
    pg_dsn: str, postgres: localstack.PostgresServer
) -> None:
    """Only a log of the regime's own DSN joins its transaction: elsewhere the entry is
    committed at once (and the change still fails when the entry does)."""
    elsewhere = postgres.create_database("t_" + uuid.uuid4().hex[:12])
    log = AuditLog(PgAudit(elsewhere))
    regime = Regime(PgRegime(pg_dsn))
    record = issued_by(log)

    def recorded_then_failed(order: Order) -> None:
        record(order)
        raise RuntimeError("the change fails after its entry was written")

    try:
        with pytest.raises(RuntimeError):
            regime.add_order(order_spec(), issued_by="chief", audit=recorded_then_failed)
        assert regime.list_orders() == [] and len(log) == 1
    finally:
        regime.close()
        log.close()


def test_two_nodes_share_one_log(pg_dsn: str) -> None:
    node_a = AuditLog(PgAudit(pg_dsn))
    node_b = AuditLog(PgAudit(pg_dsn))
    try:
        first = node_a.record(actor="chief", actor_role="admin", action="alert.issue", at=T0)
        second = node_b.record(actor="deputy", actor_role="admin", action="order.issue", at=T0)
        assert second.seq > first.seq
        assert node_a.query() == node_b.query() == ([second, first], 2)
    finally:
        node_a.close()
        node_b.close()


def test_the_schema_is_versioned_and_a_newer_one_refused(pg_dsn: str) -> None:
    PgAudit(pg_dsn).close()
    PgAudit(pg_dsn).close()  # again: nothing to do
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT component, version FROM gateway_schema").fetchall()
        assert rows == [("audit log", 1)]
        conn.execute("UPDATE gateway_schema SET version = 2 WHERE component = 'audit log'")
    with pytest.raises(StateError, match="audit log format version 2 is newer"):
        PgAudit(pg_dsn)
