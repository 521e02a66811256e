"""Response models and parameter types of the HTTP API (what the OpenAPI document states)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from ..anomalies.messages import summary
from ..anomalies.model import Anomaly
from ..anomalies.types import FAMILIES
from ..regime import AlertLevel, ControlState
from ..registry import Enterprise, Registry
from ..reports.model import TransportStatus
from .lang import Lang

BEIJING = ZoneInfo("Asia/Shanghai")


def _aware(value: datetime) -> datetime:
    """A time without an offset is Beijing time (as on every input of the gateway)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    return value


QueryTime = Annotated[datetime, AfterValidator(_aware)]

ANOMALY_TYPES = sorted(FAMILIES)
ANOMALY_FAMILIES = sorted(set(FAMILIES.values()))


def _known(allowed: list[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown anomaly {what} {value!r}; one of {', '.join(allowed)}")
        return value

    return AfterValidator(check)


AnomalyType = Annotated[
    str,
    _known(ANOMALY_TYPES, "type"),
    WithJsonSchema({"type": "string", "enum": ANOMALY_TYPES}),
]
AnomalyFamily = Annotated[
    str,
    _known(ANOMALY_FAMILIES, "family"),
    WithJsonSchema({"type": "string", "enum": ANOMALY_FAMILIES}),
]

DeviceState = Literal["online", "offline", "unknown"]


class Problem(BaseModel):
    detail: str


class AnomalyOut(BaseModel):
    """One anomaly (docs/contracts.md section 3)."""

    id: str
    type: str
    family: str
    severity: Literal["warning", "alarm"]
    enterprise: str
    subject: str
    state: Literal["open", "closed"]
    started_at: datetime
    ended_at: datetime | None
    detected_at: datetime
    summary: str = Field(description="rendered from type and evidence in the language asked")
    evidence: dict[str, Any]
    rule: str

    @classmethod
    def of(
        cls, anomaly: Anomaly, lang: Lang = "zh", registry: Registry | None = None
    ) -> AnomalyOut:
        body = anomaly.to_json()
        body["summary"] = summary(anomaly, lang, registry)
        return cls.model_validate(body)


class AnomalyPage(BaseModel):
    items: list[AnomalyOut]
    total: int = Field(description="anomalies matching the filters")
    limit: int
    offset: int
    last_seq: int = Field(
        0,
        description="the store's last event when the list was read: a stream opened with "
        "`after` = this misses nothing",
    )


class RegionOut(BaseModel):
    id: str
    name: str
    parent: str | None
    level: str | None


class EnterpriseSummary(BaseModel):
    id: str
    name: str
    region: str
    region_name: str = Field("", description="the region's name in the registry's hierarchy")
    industry: str
    grade: str
    outlets: int
    meters: int
    gates: int
    control_level: AlertLevel | None = Field(description="alert level in force now")
    orders_in_force: int = Field(description="orders in force now")


class OutletOut(BaseModel):
    id: str
    mn: str
    kind: str
    version: str | None
    open: bool


class MeterOut(BaseModel):
    id: str
    role: Literal["production", "treatment", "total"]
    line: str
    on_threshold_kw: float


class GateOut(BaseModel):
    id: str
    name: str


class PlanProblemOut(BaseModel):
    """A plan measure no registered device can verify (可监测、可核查), found at registry load."""

    code: str = Field(description="e.g. stop_without_meter, indicator_device_unregistered")
    key: str = Field(description="the plan key (alert level or layer) it is under")
    text: str = Field(description="what is missing, in Chinese")


class EnterpriseDetail(BaseModel):
    id: str
    name: str
    region: str
    industry: str
    grade: str
    outlets: list[OutletOut]
    meters: list[MeterOut]
    gates: list[GateOut]
    status: dict[str, Any] | None = Field(
        description="live status from the rule engine: devices online, lines and treatment "
        "running, today's completeness; null when unknown"
    )
    control: ControlState = Field(description="alerts and orders in force now")
    transport: TransportStatus | None = Field(
        None,
        description="from its gate records in InfluxDB: heavy user (用车大户) on the last "
        "complete Beijing day, this month's clean-transport share so far; null without gates "
        "or when InfluxDB cannot be read or counted (2.x)",
    )
    plan_problems: list[PlanProblemOut] = Field(
        default_factory=list, description="plan measures no registered device can verify"
    )

    @classmethod
    def of(
        cls,
        ent: Enterprise,
        status: dict[str, Any] | None,
        control: ControlState,
        plan_problems: list[PlanProblemOut] | None = None,
    ) -> EnterpriseDetail:
        return cls(
            id=ent.id,
            name=ent.name,
            region=ent.region,
            industry=ent.industry,
            grade=ent.grade,
            outlets=[
                OutletOut(id=o.id, mn=o.mn, kind=o.kind, version=o.version, open=o.open)
                for o in ent.outlets
            ],
            meters=[
                MeterOut(id=m.id, role=m.role, line=m.line, on_threshold_kw=m.on_threshold_kw)
                for m in ent.meters
            ],
            gates=[GateOut(id=g.id, name=g.name) for g in ent.gates],
            status=status,
            control=control,
            plan_problems=plan_problems or [],
        )


class DeviceOut(BaseModel):
    """A registered device; the status provider may add fields."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["hj212", "meter", "gate"]
    id: str
    enterprise: str
    online: bool | None = Field(description="null while unknown")
    last_seen: datetime | None = None


class Health(BaseModel):
    status: Literal["ok", "ready", "not ready"]


EmissionField = Literal["rtd", "avg", "min", "max", "cou", "zs_rtd", "zs_avg", "zs_min", "zs_max"]
PowerField = Literal["p_kw", "kwh", "ua", "ub", "uc", "ia", "ib", "ic", "pf", "energy_kwh"]
Interval = Literal["rtd", "minute", "hour", "day"]


class SeriesOut(BaseModel):
    """Stored values of one field of one series, oldest first."""

    label: str
    measurement: Literal["emission", "power"]
    tags: dict[str, str] = Field(description="the tags the values were selected by")
    field: str
    unit: str | None = None
    points: list[tuple[datetime, float]] = Field(
        description="[time (UTC, ISO 8601), value] pairs, oldest first"
    )
    bucket_s: int | None = Field(
        None,
        description="null: the stored values; otherwise means per bucket of this many seconds "
        "(long windows), each at its bucket's start",
    )
    limit: float | None = Field(None, description="a threshold to draw as a horizontal line")
    limit_label: str | None = None


class Window(BaseModel):
    start: datetime = Field(description="inclusive")
    end: datetime = Field(description="exclusive")


class AnomalySeries(BaseModel):
    """The series that explain one anomaly, over a window around it."""

    anomaly_id: str
    type: str
    enterprise: str
    subject: str
    started_at: datetime
    ended_at: datetime | None
    as_of: datetime | None = Field(description="how far in event time the rule had judged")
    window: Window
    series: list[SeriesOut] = Field(description="empty for types without values to chart")
    note: str | None = Field(None, description="why there is nothing to chart, when there is not")


class SeriesPage(BaseModel):
    window: Window
    series: list[SeriesOut]
