"""The control regime: heavy-pollution alerts and explicit shutdown / curtailment orders.

Persisted in its own SQLite file (standard library) and held in memory, so `in_force`, the
query the rules ask on every event, is a pure function of the stored alerts and orders and of
its arguments: it never reads the clock. Windows are half-open: an alert or order is in force
at `t` when `starts_at <= t < ends_at`.

The file's schema is versioned (``PRAGMA user_version``, see `gateway.migrations`): version 1
is the schema of the first release, whose files say 0 and open unchanged.
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

# (version, step) in order; append a step for every change of the schema, never edit one
MIGRATIONS: list[Migration] = [(1, _SCHEMA_V1)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


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

    def in_force(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def covers(self, enterprise_id: str, region: str) -> bool:
        return enterprise_id in self.enterprises or (bool(region) and region in self.regions)


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
    issued_by: str = Field("", max_length=200)

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

    def in_force(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

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


def _alert_key(alert: Alert) -> tuple[int, datetime, str]:
    return (-LEVEL_RANK[alert.level], alert.starts_at, alert.id)


def _order_key(order: Order) -> tuple[datetime, str]:
    return (order.starts_at, order.id)


def _require_aware(at: datetime, name: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {at.isoformat()}")


class Regime:
    """Alerts and orders: written through to SQLite, answered from memory."""

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
        for row in self._db.execute("SELECT id, body FROM control_order"):
            self._index(Order.model_validate_json(row[1]))

    def close(self) -> None:
        self._db.close()

    # -- alerts ---------------------------------------------------------------------------

    def add_alert(self, spec: AlertSpec) -> Alert:
        alert = Alert(**spec.model_dump(), id=uuid.uuid4().hex)
        self._db.execute(
            "INSERT INTO alert (id, body) VALUES (?, ?)", (alert.id, alert.model_dump_json())
        )
        self._alerts[alert.id] = alert
        return alert

    def get_alert(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def list_alerts(self, active_at: datetime | None = None) -> list[Alert]:
        """All alerts, or those in force at `active_at`; highest level first."""
        alerts = list(self._alerts.values())
        if active_at is not None:
            _require_aware(active_at, "active_at")
            alerts = [a for a in alerts if a.in_force(active_at)]
        return sorted(alerts, key=_alert_key)

    def delete_alert(self, alert_id: str) -> bool:
        if alert_id not in self._alerts:
            return False
        self._db.execute("DELETE FROM alert WHERE id = ?", (alert_id,))
        del self._alerts[alert_id]
        return True

    # -- orders ---------------------------------------------------------------------------

    def add_order(self, spec: OrderSpec) -> Order:
        order = Order(**spec.model_dump(), id=uuid.uuid4().hex)
        self._db.execute(
            "INSERT INTO control_order (id, body) VALUES (?, ?)",
            (order.id, order.model_dump_json()),
        )
        self._index(order)
        return order

    def _index(self, order: Order) -> None:
        self._orders[order.id] = order
        self._orders_of.setdefault(order.enterprise, {})[order.id] = order

    def get_order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def list_orders(
        self, active_at: datetime | None = None, enterprise: str | None = None
    ) -> list[Order]:
        """All orders, or those in force at `active_at` / for `enterprise`; by start."""
        pool = self._orders if enterprise is None else self._orders_of.get(enterprise, {})
        orders = list(pool.values())
        if active_at is not None:
            _require_aware(active_at, "active_at")
            orders = [o for o in orders if o.in_force(active_at)]
        return sorted(orders, key=_order_key)

    def delete_order(self, order_id: str) -> bool:
        if order_id not in self._orders:
            return False
        self._db.execute("DELETE FROM control_order WHERE id = ?", (order_id,))
        order = self._orders.pop(order_id)
        del self._orders_of[order.enterprise][order_id]
        return True

    # -- the query the rules ask ----------------------------------------------------------

    def boundaries(self, enterprise_id: str, region: str, before: datetime) -> list[datetime]:
        """Every start and end at or before `before` of the alerts (declared or calendar) and
        orders that concern an enterprise, latest first: where what is in force can change."""
        _require_aware(before, "before")
        found: set[datetime] = set()
        for alert in (*self._alerts.values(), *self.calendar()):
            if alert.covers(enterprise_id, region):
                found.update(t for t in (alert.starts_at, alert.ends_at) if t <= before)
        for order in self._orders_of.get(enterprise_id, {}).values():
            found.update(t for t in (order.starts_at, order.ends_at) if t <= before)
        return sorted(found, reverse=True)

    def in_force(self, enterprise_id: str, region: str, at: datetime) -> ControlState:
        """The alert level, alerts and orders in force for an enterprise at event time `at`.

        An alert covers the enterprise when its enterprise list names it or its region list
        names `region`. Orders carry their `starts_at`, from which rules count a ramp-down
        grace.
        """
        _require_aware(at, "at")
        alerts = sorted(
            (
                a
                for a in (*self._alerts.values(), *self.calendar())
                if a.in_force(at) and a.covers(enterprise_id, region)
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
