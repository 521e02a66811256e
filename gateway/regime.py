"""The control regime: heavy-pollution alerts and explicit shutdown / curtailment orders.

Persisted in its own SQLite file (standard library) and held in memory, so `in_force`, the
query the rules ask on every event, is a pure function of the stored alerts and orders and of
its arguments: it never reads the clock. Windows are half-open: an alert or order is in force
at `t` when `starts_at <= t < ends_at`.

Alerts and orders are withdrawn, never deleted: a withdrawn one keeps its record, with
`withdrawn_at`, `withdrawn_by` and `withdraw_reason`, and is in force only before
`withdrawn_at` (as if its window had ended there; withdrawn before its start, it never was).
What the rules judged while it was in force stays judged, and late data from then is judged
under it too.

The file's schema is versioned (``PRAGMA user_version``, see `gateway.migrations`): version 1
is the schema of the first release, whose files say 0 and open unchanged; version 2 bodies
may carry an issuer and a withdrawal.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .migrations import Migration, migrate

AlertLevel = Literal["yellow", "orange", "red"]
OrderKind = Literal["shutdown", "curtailment"]

LEVEL_RANK: dict[str, int] = {"yellow": 1, "orange": 2, "red": 3}

Name = Annotated[str, Field(min_length=1, max_length=200)]
PERIOD_PREFIX = "period:"  # ids of the alerts that stand for calendar control periods

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


IssuedBy = Annotated[
    str,
    Field(
        max_length=200,
        description="name of the account that issued it (empty: issued before accounts were "
        "recorded)",
    ),
]
WithdrawnAt = Annotated[
    AwareDatetime | None,
    Field(description="when it was withdrawn (no longer in force from then on); null if not"),
]
WithdrawnBy = Annotated[
    str | None, Field(description="name of the account that withdrew it; null if not withdrawn")
]
WithdrawReason = Annotated[
    str | None, Field(description="why it was withdrawn, as the account gave it; null if none")
]


class AlreadyWithdrawn(Exception):
    """An alert or order that was withdrawn before: a withdrawal happens once."""

    def __init__(self, what: str, record_id: str, at: datetime, by: str | None) -> None:
        super().__init__(f"{what} {record_id!r} was withdrawn at {at.isoformat()} by {by}")


def _check_window(starts_at: datetime, ends_at: datetime) -> None:
    try:
        starts_at.astimezone(UTC)
        ends_at.astimezone(UTC)
    except OverflowError:
        raise ValueError("starts_at and ends_at must be representable in UTC") from None
    if ends_at <= starts_at:
        raise ValueError(
            f"ends_at ({ends_at.isoformat()}) must be after starts_at ({starts_at.isoformat()})"
        )


class AlertSpec(BaseModel):
    """A heavy-pollution weather alert as declared: level, who it covers, and its window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: AlertLevel
    regions: list[Name] = Field(default_factory=list, description="regions it covers")
    enterprises: list[Name] = Field(default_factory=list, description="enterprise ids it covers")
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="exclusive end of the window")
    note: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _valid(self) -> AlertSpec:
        if not self.regions and not self.enterprises:
            raise ValueError("an alert needs at least one region or one enterprise")
        _check_window(self.starts_at, self.ends_at)
        return self


class Alert(AlertSpec):
    id: str = Field(description="generated when the alert is added")
    issued_by: IssuedBy = ""
    withdrawn_at: WithdrawnAt = None
    withdrawn_by: WithdrawnBy = None
    withdraw_reason: WithdrawReason = None

    def in_force(self, at: datetime) -> bool:
        return _in_force(self.starts_at, self.ends_at, self.withdrawn_at, at)

    def edges(self) -> tuple[datetime, ...]:
        """Where it starts and stops being in force (none when withdrawn before its start)."""
        return _edges(self.starts_at, self.ends_at, self.withdrawn_at)

    def covers(
        self,
        enterprise_id: str,
        region: str,
        within: Callable[[str, Sequence[str]], bool] | None = None,
    ) -> bool:
        """Whether the alert concerns the enterprise: it names it, or names its region (or,
        with the registry's hierarchy `within`, a region the enterprise's region lies under)."""
        if enterprise_id in self.enterprises:
            return True
        if not region or not self.regions:
            return False
        return within(region, self.regions) if within is not None else region in self.regions


class OrderSpec(BaseModel):
    """An explicit shutdown (停产) or curtailment (限产) order for one enterprise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: OrderKind
    enterprise: Name
    lines: list[Name] = Field(
        default_factory=list, description="production lines it covers; empty means all lines"
    )
    percent: float | None = Field(
        None,
        gt=0,
        le=100,
        description="curtailment in percent; required for curtailment, "
        "ignored (stored as null) for shutdown",
    )
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="exclusive end of the window")
    note: str = Field("", max_length=2000)
    issued_by: str = Field(
        "",
        max_length=200,
        description="accepted for compatibility and ignored by the API: an order is issued by "
        "the account that posts it",
    )

    @model_validator(mode="before")
    @classmethod
    def _ignore_percent_for_shutdown(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "shutdown":
            return {**data, "percent": None}
        return data

    @model_validator(mode="after")
    def _valid(self) -> OrderSpec:
        if self.kind == "curtailment" and self.percent is None:
            raise ValueError("a curtailment order needs percent (0 < percent <= 100)")
        _check_window(self.starts_at, self.ends_at)
        return self


class Order(OrderSpec):
    id: str = Field(description="generated when the order is added")
    issued_by: IssuedBy = ""
    withdrawn_at: WithdrawnAt = None
    withdrawn_by: WithdrawnBy = None
    withdraw_reason: WithdrawReason = None

    def in_force(self, at: datetime) -> bool:
        return _in_force(self.starts_at, self.ends_at, self.withdrawn_at, at)

    def edges(self) -> tuple[datetime, ...]:
        """Where it starts and stops being in force (none when withdrawn before its start)."""
        return _edges(self.starts_at, self.ends_at, self.withdrawn_at)

    def covers_line(self, line: str) -> bool:
        return not self.lines or line in self.lines


class ControlState(BaseModel):
    """What is in force for one enterprise at one event time."""

    model_config = ConfigDict(frozen=True)

    enterprise: str
    region: str
    at: AwareDatetime
    level: AlertLevel | None = Field(description="highest alert level in force, null if none")
    alerts: list[Alert] = Field(description="alerts in force covering it, highest level first")
    orders: list[Order] = Field(description="orders in force for it, earliest start first")

    def orders_for_line(self, line: str, kind: OrderKind | None = None) -> list[Order]:
        """Orders in force covering `line` (an order without lines covers every line)."""
        return [o for o in self.orders if o.covers_line(line) and (kind is None or o.kind == kind)]


class CalendarPeriod(Protocol):
    """A calendar control period as the registry declares it."""

    name: str
    level: AlertLevel
    regions: list[str]
    enterprises: list[str]
    windows: list[tuple[datetime, datetime]]


def period_alerts(periods: Iterable[CalendarPeriod]) -> list[Alert]:
    """Calendar control periods (major events, staggered production) as the alerts they are
    in force like: one per window, id `period:<name>:<n>`."""
    return [
        Alert(
            id=f"{PERIOD_PREFIX}{p.name}:{i}",
            level=p.level,
            regions=p.regions,
            enterprises=p.enterprises,
            starts_at=start,
            ends_at=end,
            note=f"calendar control period {p.name}",
        )
        for p in periods
        for i, (start, end) in enumerate(p.windows)
    ]


def _in_force(
    starts_at: datetime, ends_at: datetime, withdrawn_at: datetime | None, at: datetime
) -> bool:
    return starts_at <= at < ends_at and (withdrawn_at is None or at < withdrawn_at)


def _edges(
    starts_at: datetime, ends_at: datetime, withdrawn_at: datetime | None
) -> tuple[datetime, ...]:
    end = ends_at if withdrawn_at is None else min(ends_at, withdrawn_at)
    return (starts_at, end) if end > starts_at else ()


def _alert_key(alert: Alert) -> tuple[int, datetime, str]:
    return (-LEVEL_RANK[alert.level], alert.starts_at, alert.id)


def _order_key(order: Order) -> tuple[datetime, str]:
    return (order.starts_at, order.id)


def _require_aware(at: datetime, name: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {at.isoformat()}")


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
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(sql, params)
            audit()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

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
        if before.withdrawn_at is not None:
            raise AlreadyWithdrawn("alert", alert_id, before.withdrawn_at, before.withdrawn_by)
        after = before.model_copy(
            update={"withdrawn_at": at, "withdrawn_by": by, "withdraw_reason": reason or None}
        )
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
        if before.withdrawn_at is not None:
            raise AlreadyWithdrawn("order", order_id, before.withdrawn_at, before.withdrawn_by)
        after = before.model_copy(
            update={"withdrawn_at": at, "withdrawn_by": by, "withdraw_reason": reason or None}
        )
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
        return ControlState(
            enterprise=enterprise_id,
            region=region,
            at=at,
            level=alerts[0].level if alerts else None,
            alerts=alerts,
            orders=orders,
        )
