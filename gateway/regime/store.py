"""The store of the control regime (`Regime`): SQLite or PostgreSQL; the SQLite migrations.

The file's schema is versioned (``PRAGMA user_version``, see `gateway.migrations`): version 1
is the schema of the first release, whose files say 0 and open unchanged; version 2 bodies
may carry an issuer and a withdrawal.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from ..migrations import Migration, immediate, open_store
from .model import LAYERS, LEVEL_RANK, Alert, AlertSpec, ControlState, Order, OrderSpec

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS alert (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS control_order (id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


def _withdrawable(db: sqlite3.Connection) -> None:
    """Version 2: the tables stay as they are, but a body may now record who issued it and
    its withdrawal. A release that reads only version 1 would hold a withdrawn order in force
    (or fail on the new fields), so it must refuse such a file: hence a version of its own.
    Bodies of version 1 read as issued by nobody known and never withdrawn."""


# (version, step) in order; append a step for every change of the schema, never edit one
MIGRATIONS: list[Migration] = [(1, _SCHEMA_V1), (2, _withdrawable)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class AlreadyWithdrawn(Exception):
    """An alert or order that was withdrawn before: a withdrawal happens once."""

    def __init__(self, what: str, record_id: str, at: datetime, by: str | None) -> None:
        super().__init__(f"{what} {record_id!r} was withdrawn at {at.isoformat()} by {by}")


def _alert_key(alert: Alert) -> tuple[int, datetime, str]:
    rank = -1 if alert.level is None else LEVEL_RANK[alert.level]
    return (-rank, alert.starts_at, alert.id)


def _order_key(order: Order) -> tuple[datetime, str]:
    return (order.starts_at, order.id)


def _withdrawn(
    record: R, kind: str, record_id: str, by: str, at: datetime, reason: str | None
) -> R:
    """`record` withdrawn at `at` by `by`; `AlreadyWithdrawn` when it was before."""
    if record.withdrawn_at is not None:
        raise AlreadyWithdrawn(kind, record_id, record.withdrawn_at, record.withdrawn_by)
    return record.model_copy(
        update={"withdrawn_at": at, "withdrawn_by": by, "withdraw_reason": reason or None}
    )


def _require_aware(at: datetime, name: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {at.isoformat()}")


R = TypeVar("R", Alert, Order)
Table = Literal["alert", "control_order"]
Audit = Callable[[], None]


class RegimeBackend(Protocol):
    """Where a `Regime` keeps its records (id -> JSON body per table): this module's SQLite
    file, or PostgreSQL (`gateway.cluster.pg_regime`) shared by several processes. A write
    with `audit` calls it inside the write's transaction, before commit."""

    @property
    def path(self) -> Path | str:
        """The SQLite file, or where PostgreSQL is (no password)."""

    def load(self, table: Table) -> list[tuple[str, str]]:
        """Every (id, body) of `table`."""

    def body(self, table: Table, record_id: str) -> str | None: ...
    def insert(self, table: Table, record_id: str, body: str, audit: Audit | None) -> None: ...

    def update(
        self,
        table: Table,
        record_id: str,
        body: str,
        unchanged: Callable[[str], bool],
        audit: Audit | None,
    ) -> bool:
        """Replace the body if `unchanged(stored body)` says no other process changed it;
        whether it did."""

    def delete(self, table: Table, record_id: str) -> None: ...

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` (from any thread) when another process changed the records."""

    def close(self) -> None: ...


class SqliteRegime:
    """The regime's SQLite file, read and written by this process alone."""

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written
        by a newer release."""
        self.path = path
        self._db = open_store(path, "regime store", MIGRATIONS, None)

    def close(self) -> None:
        self._db.close()

    def watch(self, changed: Callable[[], None]) -> None:
        """Nothing to watch: no other process writes the file."""

    def load(self, table: Table) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db.execute(f"SELECT id, body FROM {table}")]

    def body(self, table: Table, record_id: str) -> str | None:
        row = self._db.execute(f"SELECT body FROM {table} WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else str(row[0])

    def insert(self, table: Table, record_id: str, body: str, audit: Audit | None) -> None:
        self._write(f"INSERT INTO {table} (id, body) VALUES (?, ?)", (record_id, body), audit)

    def update(
        self,
        table: Table,
        record_id: str,
        body: str,
        unchanged: Callable[[str], bool],
        audit: Audit | None,
    ) -> bool:
        # this process alone writes the file: the body is the one in memory
        self._write(f"UPDATE {table} SET body = ? WHERE id = ?", (body, record_id), audit)
        return True

    def delete(self, table: Table, record_id: str) -> None:
        self._db.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,))

    def _write(self, sql: str, params: tuple[str, ...], audit: Audit | None) -> None:
        """One statement, and the audit record of it, in one transaction of this file."""
        if audit is None:
            self._db.execute(sql, params)
            return
        with immediate(self._db):
            self._db.execute(sql, params)
            audit()


F = TypeVar("F", bound=Callable[..., Any])
_ANSWERS_KEPT = 256  # answers of `in_force` kept (a reading's rules ask the same one)


def _serialised(method: F) -> F:
    """Run a write (or a reload) under the store's lock: a reload that read the backend before
    a write committed cannot then replace the memory that write updated."""

    @functools.wraps(method)
    def run(self: Regime, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            finally:
                self._answers.clear()  # what was in force may have changed

    return run  # type: ignore[return-value]


class Regime:
    """Alerts and orders: written through to the backend, answered from memory (reloaded when
    another process sharing the backend changed them).

    Every write takes an optional `audit` callable, called inside the write's transaction
    once the change is made and before it commits: if it raises, nothing is stored. So a
    change the audit log could not record does not happen.
    """

    def __init__(self, where: Path | str | RegimeBackend) -> None:
        """Open the store: a SQLite file's path (created, its schema migrated; `StateError`
        when written by a newer release), or a backend such as PostgreSQL's."""
        backend = SqliteRegime(where) if isinstance(where, Path | str) else where
        self._backend: RegimeBackend = backend
        self.path = backend.path
        self._lock = threading.RLock()  # writes and reloads; readers see whole dicts
        # the last answers of `in_force`: every rule asks it of the same reading
        self._answers: dict[tuple[str, str, datetime], ControlState] = {}
        self._answered_with: Sequence[Alert] | None = None  # the calendar they were made with
        self._alerts: dict[str, Alert] = {}
        self._orders: dict[str, Order] = {}
        self._orders_of: dict[str, dict[str, Order]] = {}  # enterprise -> id -> order
        # calendar control periods (major events, staggered production) from the registry:
        # in force like alerts, but configured, not declared
        self.calendar: Callable[[], Sequence[Alert]] = tuple
        # whether a region lies within others (the registry's hierarchy); None: exact names
        self._within: Callable[[str, Sequence[str]], bool] | None = None
        self.reload()
        try:  # changes other processes make are applied on this loop
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        backend.watch(self._changed_elsewhere)

    def close(self) -> None:
        self._backend.close()

    @property
    def within(self) -> Callable[[str, Sequence[str]], bool] | None:
        return self._within

    @within.setter
    def within(self, value: Callable[[str, Sequence[str]], bool] | None) -> None:
        self._within = value
        self._answers.clear()  # regions may lie elsewhere now

    @_serialised
    def reload(self) -> None:
        """Read every alert and order again from the backend (what other processes wrote)."""
        alerts = {i: Alert.model_validate_json(body) for i, body in self._backend.load("alert")}
        orders: dict[str, Order] = {}
        orders_of: dict[str, dict[str, Order]] = {}
        for _, body in self._backend.load("control_order"):
            order = Order.model_validate_json(body)
            orders[order.id] = order
            orders_of.setdefault(order.enterprise, {})[order.id] = order
        self._alerts, self._orders, self._orders_of = alerts, orders, orders_of

    def _changed_elsewhere(self) -> None:
        loop = self._loop
        if loop is None:
            self.reload()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self.reload)

    # -- alerts ---------------------------------------------------------------------------

    @_serialised
    def add_alert(
        self,
        spec: AlertSpec,
        *,
        issued_by: str = "",
        audit: Callable[[Alert], None] | None = None,
    ) -> Alert:
        """Store a new alert issued by the account `issued_by`; `audit(alert)` before commit."""
        alert = Alert(**spec.model_dump(), id=uuid.uuid4().hex, issued_by=issued_by)
        self._backend.insert(
            "alert",
            alert.id,
            alert.model_dump_json(),
            None if audit is None else lambda: audit(alert),
        )
        self._alerts[alert.id] = alert
        return alert

    def get_alert(self, alert_id: str) -> Alert | None:
        """The alert, withdrawn or not."""
        return self._alerts.get(alert_id)

    def list_alerts(
        self, active_at: datetime | None = None, *, include_withdrawn: bool = True
    ) -> list[Alert]:
        """All alerts, or those in force at `active_at` (never one withdrawn by then); highest
        level first. `include_withdrawn=False` leaves out every withdrawn one."""
        alerts = list(self._alerts.values())
        if active_at is not None:
            _require_aware(active_at, "active_at")
            alerts = [a for a in alerts if a.in_force(active_at)]
        if not include_withdrawn:
            alerts = [a for a in alerts if a.withdrawn_at is None]
        return sorted(alerts, key=_alert_key)

    @_serialised
    def withdraw_alert(
        self,
        alert_id: str,
        *,
        by: str,
        at: datetime,
        reason: str | None = None,
        audit: Callable[[Alert, Alert], None] | None = None,
    ) -> Alert | None:
        """Withdraw an alert from `at` on: the withdrawn alert, or None when there is none.
        `AlreadyWithdrawn` when it was withdrawn before. `audit(before, after)` before commit."""
        _require_aware(at, "at")
        before = self._alerts.get(alert_id)
        if before is None:
            return None
        after = _withdrawn(before, "alert", alert_id, by, at, reason)
        if not self._backend.update(
            "alert",
            alert_id,
            after.model_dump_json(),
            lambda stored: Alert.model_validate_json(stored) == before,
            None if audit is None else lambda: audit(before, after),
        ):  # changed by another process meanwhile: withdrawn there
            self._alerts[alert_id] = self._stored(Alert, "alert", alert_id)
            return self.withdraw_alert(alert_id, by=by, at=at, reason=reason, audit=audit)
        self._alerts[alert_id] = after
        return after

    @_serialised
    def delete_alert(self, alert_id: str) -> bool:
        """Erase an alert with no trace. Not for the API, which withdraws (`withdraw_alert`)
        so the record stays; for maintenance and tests."""
        if alert_id not in self._alerts:
            return False
        self._backend.delete("alert", alert_id)
        del self._alerts[alert_id]
        return True

    # -- orders ---------------------------------------------------------------------------

    @_serialised
    def add_order(
        self,
        spec: OrderSpec,
        *,
        issued_by: str | None = None,
        audit: Callable[[Order], None] | None = None,
    ) -> Order:
        """Store a new order; `issued_by` (the account) replaces the spec's own when given.
        `audit(order)` before commit."""
        fields = spec.model_dump()
        if issued_by is not None:
            fields["issued_by"] = issued_by
        order = Order(**fields, id=uuid.uuid4().hex)
        self._backend.insert(
            "control_order",
            order.id,
            order.model_dump_json(),
            None if audit is None else lambda: audit(order),
        )
        self._index(order)
        return order

    def _index(self, order: Order) -> None:
        self._orders[order.id] = order
        self._orders_of.setdefault(order.enterprise, {})[order.id] = order

    def get_order(self, order_id: str) -> Order | None:
        """The order, withdrawn or not."""
        return self._orders.get(order_id)

    def list_orders(
        self,
        active_at: datetime | None = None,
        enterprise: str | None = None,
        *,
        include_withdrawn: bool = True,
    ) -> list[Order]:
        """All orders, or those in force at `active_at` (never one withdrawn by then) / for
        `enterprise`; by start. `include_withdrawn=False` leaves out every withdrawn one."""
        pool = self._orders if enterprise is None else self._orders_of.get(enterprise, {})
        orders = list(pool.values())
        if active_at is not None:
            _require_aware(active_at, "active_at")
            orders = [o for o in orders if o.in_force(active_at)]
        if not include_withdrawn:
            orders = [o for o in orders if o.withdrawn_at is None]
        return sorted(orders, key=_order_key)

    @_serialised
    def withdraw_order(
        self,
        order_id: str,
        *,
        by: str,
        at: datetime,
        reason: str | None = None,
        audit: Callable[[Order, Order], None] | None = None,
    ) -> Order | None:
        """Withdraw an order from `at` on: the withdrawn order, or None when there is none.
        `AlreadyWithdrawn` when it was withdrawn before. `audit(before, after)` before commit."""
        _require_aware(at, "at")
        before = self._orders.get(order_id)
        if before is None:
            return None
        after = _withdrawn(before, "order", order_id, by, at, reason)
        if not self._backend.update(
            "control_order",
            order_id,
            after.model_dump_json(),
            lambda stored: Order.model_validate_json(stored) == before,
            None if audit is None else lambda: audit(before, after),
        ):  # changed by another process meanwhile: withdrawn there
            self._index(self._stored(Order, "control_order", order_id))
            return self.withdraw_order(order_id, by=by, at=at, reason=reason, audit=audit)
        self._index(after)
        return after

    @_serialised
    def delete_order(self, order_id: str) -> bool:
        """Erase an order with no trace. Not for the API, which withdraws (`withdraw_order`)
        so the record stays; for maintenance and tests."""
        if order_id not in self._orders:
            return False
        self._backend.delete("control_order", order_id)
        order = self._orders.pop(order_id)
        del self._orders_of[order.enterprise][order_id]
        return True

    def _stored(self, kind: type[R], table: Table, record_id: str) -> R:
        body = self._backend.body(table, record_id)
        if body is None:
            raise LookupError(f"{table} {record_id!r} is gone from the store")
        return kind.model_validate_json(body)

    # -- the query the rules ask ----------------------------------------------------------

    def boundaries(self, enterprise_id: str, region: str, before: datetime) -> list[datetime]:
        """Every start and end at or before `before` of the alerts (declared or calendar) and
        orders that concern an enterprise, latest first: where what is in force can change.
        A withdrawn one ends at its withdrawal (and has none when withdrawn before it began)."""
        _require_aware(before, "before")
        found: set[datetime] = set()
        for alert in (*self._alerts.values(), *self.calendar()):
            if alert.covers(enterprise_id, region, self.within):
                found.update(t for t in alert.edges() if t <= before)
        for order in self._orders_of.get(enterprise_id, {}).values():
            found.update(t for t in order.edges() if t <= before)
        return sorted(found, reverse=True)

    def in_force(self, enterprise_id: str, region: str, at: datetime) -> ControlState:
        """The alert level, alerts and orders in force for an enterprise at event time `at`
        (a withdrawn one only before its withdrawal).

        An alert covers the enterprise when its enterprise list names it or its region list
        names `region` or a region above it (`within`: a city's alert covers its counties).
        Orders carry their `starts_at`, from which rules count a ramp-down grace.
        """
        _require_aware(at, "at")
        calendar = self.calendar()
        if calendar is not self._answered_with:  # another registry: other periods, regions
            self._answers.clear()
            self._answered_with = calendar
        key = (enterprise_id, region, at)
        found = self._answers.get(key)
        if found is not None:
            return found
        if len(self._answers) >= _ANSWERS_KEPT:
            self._answers.clear()
        alerts = sorted(
            (
                a
                for a in (*self._alerts.values(), *calendar)
                if a.in_force(at) and a.covers(enterprise_id, region, self.within)
            ),
            key=_alert_key,
        )
        orders = sorted(
            (o for o in self._orders_of.get(enterprise_id, {}).values() if o.in_force(at)),
            key=_order_key,
        )
        layers = {a.layer for a in alerts}
        found = self._answers[key] = ControlState(
            enterprise=enterprise_id,
            region=region,
            at=at,
            level=alerts[0].level if alerts else None,  # a leveled alert sorts first
            layers=[layer for layer in LAYERS if layer in layers],
            alerts=alerts,
            orders=orders,
        )
        return found
