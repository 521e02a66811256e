"""The SQLite store of the control regime (`Regime`) and the migrations of its file.

The file's schema is versioned (``PRAGMA user_version``, see `gateway.migrations`): version 1
is the schema of the first release, whose files say 0 and open unchanged; version 2 bodies
may carry an issuer and a withdrawal.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ..migrations import Migration, immediate, migrate
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


class Regime:
    """Alerts and orders: written through to SQLite, answered from memory.

    Every write takes an optional `audit` callable, called inside the write's transaction
    once the change is made and before it commits: if it raises, nothing is stored. So a
    change the audit log could not record does not happen.
    """

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written by
        a newer release."""
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            migrate(self._db, path, "regime store", MIGRATIONS)
        except BaseException:
            self._db.close()
            raise
        self._db.execute("PRAGMA journal_mode=WAL")
        self._alerts = {
            row[0]: Alert.model_validate_json(row[1])
            for row in self._db.execute("SELECT id, body FROM alert")
        }
        self._orders: dict[str, Order] = {}
        self._orders_of: dict[str, dict[str, Order]] = {}  # enterprise -> id -> order
        # calendar control periods (major events, staggered production) from the registry:
        # in force like alerts, but configured, not declared
        self.calendar: Callable[[], Sequence[Alert]] = tuple
        # whether a region lies within others (the registry's hierarchy); None: exact names
        self.within: Callable[[str, Sequence[str]], bool] | None = None
        for row in self._db.execute("SELECT id, body FROM control_order"):
            self._index(Order.model_validate_json(row[1]))

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, params: tuple[str, ...], audit: Callable[[], None] | None) -> None:
        """One statement, and the audit record of it, in one transaction of this file."""
        if audit is None:
            self._db.execute(sql, params)
            return
        with immediate(self._db):
            self._db.execute(sql, params)
            audit()

    # -- alerts ---------------------------------------------------------------------------

    def add_alert(
        self,
        spec: AlertSpec,
        *,
        issued_by: str = "",
        audit: Callable[[Alert], None] | None = None,
    ) -> Alert:
        """Store a new alert issued by the account `issued_by`; `audit(alert)` before commit."""
        alert = Alert(**spec.model_dump(), id=uuid.uuid4().hex, issued_by=issued_by)
        self._write(
            "INSERT INTO alert (id, body) VALUES (?, ?)",
            (alert.id, alert.model_dump_json()),
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
        self._write(
            "UPDATE alert SET body = ? WHERE id = ?",
            (after.model_dump_json(), alert_id),
            None if audit is None else lambda: audit(before, after),
        )
        self._alerts[alert_id] = after
        return after

    def delete_alert(self, alert_id: str) -> bool:
        """Erase an alert with no trace. Not for the API, which withdraws (`withdraw_alert`)
        so the record stays; for maintenance and tests."""
        if alert_id not in self._alerts:
            return False
        self._db.execute("DELETE FROM alert WHERE id = ?", (alert_id,))
        del self._alerts[alert_id]
        return True

    # -- orders ---------------------------------------------------------------------------

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
        self._write(
            "INSERT INTO control_order (id, body) VALUES (?, ?)",
            (order.id, order.model_dump_json()),
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
        self._write(
            "UPDATE control_order SET body = ? WHERE id = ?",
            (after.model_dump_json(), order_id),
            None if audit is None else lambda: audit(before, after),
        )
        self._index(after)
        return after

    def delete_order(self, order_id: str) -> bool:
        """Erase an order with no trace. Not for the API, which withdraws (`withdraw_order`)
        so the record stays; for maintenance and tests."""
        if order_id not in self._orders:
            return False
        self._db.execute("DELETE FROM control_order WHERE id = ?", (order_id,))
        order = self._orders.pop(order_id)
        del self._orders_of[order.enterprise][order_id]
        return True

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
        alerts = sorted(
            (
                a
                for a in (*self._alerts.values(), *self.calendar())
                if a.in_force(at) and a.covers(enterprise_id, region, self.within)
            ),
            key=_alert_key,
        )
        orders = sorted(
            (o for o in self._orders_of.get(enterprise_id, {}).values() if o.in_force(at)),
            key=_order_key,
        )
        layers = {a.layer for a in alerts}
        return ControlState(
            enterprise=enterprise_id,
            region=region,
            at=at,
            level=alerts[0].level if alerts else None,  # a leveled alert sorts first
            layers=[layer for layer in LAYERS if layer in layers],
            alerts=alerts,
            orders=orders,
        )
