"""The models of the control regime: alerts and orders as declared and as stored, what is in
force for an enterprise (`ControlState`), and calendar control periods as alerts. Windows are
half-open: in force at `t` when `starts_at <= t < ends_at`, and before `withdrawn_at`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

AlertLevel = Literal["blue", "yellow", "orange", "red"]  # blue: where a region uses one
# Layers of control beyond the alert level, each with plans of its own: an event control period
# (赛时管控) and a reinforced layer (应急强化) on top of it
Layer = Literal["event", "reinforced"]
PlanKey = AlertLevel | Layer  # what an enterprise's plans and transport rules are keyed by
OrderKind = Literal["shutdown", "curtailment"]

LEVEL_RANK: dict[str, int] = {"blue": 0, "yellow": 1, "orange": 2, "red": 3}
LAYERS: tuple[Layer, ...] = ("reinforced", "event")  # the more stringent first

Name = Annotated[str, Field(min_length=1, max_length=200)]
PERIOD_PREFIX = "period:"  # ids of the alerts that stand for calendar control periods

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
    """A heavy-pollution weather alert as declared: level, who it covers, and its window; or a
    layer of control (an event period, a reinforced layer), with or without a level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: AlertLevel | None = Field(None, description="alert level; null for a layer alone")
    layer: Layer | None = Field(
        None, description="event (赛时管控) or reinforced (应急强化): its plans apply too"
    )
    regions: list[Name] = Field(default_factory=list, description="regions it covers")
    enterprises: list[Name] = Field(default_factory=list, description="enterprise ids it covers")
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="exclusive end of the window")
    note: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _valid(self) -> AlertSpec:
        if not self.regions and not self.enterprises:
            raise ValueError("an alert needs at least one region or one enterprise")
        if self.level is None and self.layer is None:
            raise ValueError("an alert needs a level, a layer or both")
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
    layers: list[Layer] = Field(
        default_factory=list, description="layers of control in force, reinforced first"
    )
    alerts: list[Alert] = Field(description="alerts in force covering it, highest level first")
    orders: list[Order] = Field(description="orders in force for it, earliest start first")

    def plan_keys(self) -> list[PlanKey]:
        """What the enterprise's plans are looked up by now: the layers in force (reinforced
        first), then the alert level. Every one applies; the most stringent measure wins."""
        out: list[PlanKey] = [*self.layers]
        if self.level is not None:
            out.append(self.level)
        return out

    def alerts_for(self, key: PlanKey) -> list[Alert]:
        """The alerts (declared or calendar) in force that bring `key`."""
        return [a for a in self.alerts if key in (a.level, a.layer)]

    def orders_for_line(self, line: str, kind: OrderKind | None = None) -> list[Order]:
        """Orders in force covering `line` (an order without lines covers every line)."""
        return [o for o in self.orders if o.covers_line(line) and (kind is None or o.kind == kind)]


class CalendarPeriod(Protocol):
    """A calendar control period as the registry declares it."""

    name: str
    level: AlertLevel | None
    layer: Layer | None
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
            layer=p.layer,
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
