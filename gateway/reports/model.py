"""What a report says, as pydantic models (the API's JSON and its OpenAPI schema). Times are
ISO 8601 with their offset (Beijing time); counts are plain integers; a share or a rate is a
number from 0 to 1, null when there is nothing to divide by."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["complied", "violated", "unverifiable", "unknown"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class PeriodOut(_Out):
    kind: Literal["day", "month"]
    label: str = Field(description="`YYYY-MM-DD` or `YYYY-MM` (Beijing time)")
    start: datetime
    end: datetime = Field(description="exclusive")
    hours: int = Field(description="hours of the period")
    hours_ended: int = Field(description="hours of the period ended when the report was made")


class ScopeOut(_Out):
    region: str | None = Field(description="the region asked for, or null")
    enterprise: str | None = Field(description="the enterprise asked for, or null")
    enterprises: int = Field(description="registered enterprises the report covers")
    whole: bool = Field(description="every enterprise, and anomalies of none (unregistered)")


class TypeCount(_Out):
    type: str
    family: str
    total: int
    open: int
    closed: int
    alarm: int
    warning: int


class CaseStateCount(_Out):
    state: str = Field(description="a case state, or `none`: the anomaly has no case")
    count: int


class VerdictCount(_Out):
    verdict: str
    count: int


class AnomalyCounts(_Out):
    total: int = Field(description="anomalies that started in the period")
    open: int
    closed: int
    alarm: int
    warning: int
    by_type: list[TypeCount] = Field(description="every type, in the order of the type list")
    by_case_state: list[CaseStateCount] = Field(
        description="anomalies by the state of their case now (`none` first)"
    )
    by_verdict: list[VerdictCount] = Field(
        description="anomalies whose case has a verdict, by verdict"
    )


class EnterpriseCount(_Out):
    enterprise: str
    name: str
    total: int
    alarm: int
    warning: int
    open: int


class Timeliness(_Out):
    opened: int = Field(description="cases opened in the period")
    signed: int = Field(description="of those, signed for (now)")
    closed: int = Field(description="of those, closed (销号) now")
    median_sign_h: float | None = Field(description="median hours from opening to signing")
    median_close_h: float | None = Field(description="median hours from opening to closing")
    overdue: int = Field(description="of those, past their deadline and not verified or closed")


class DeviceRate(_Out):
    enterprise: str
    name: str = Field(description="the enterprise's name")
    outlet: str
    mn: str
    received: int = Field(description="distinct hours with an hourly record")
    hours: int = Field(description="hours of the period ended")
    rate: float | None = Field(description="传输率: received / hours")


class Transmission(_Out):
    threshold: float = Field(description="devices below this rate are listed in `below`")
    hours: int
    devices: list[DeviceRate] = Field(description="every device of the scope, lowest rate first")
    below: list[DeviceRate]


class ComplianceRow(_Out):
    source: Literal["alert", "order"]
    ref: str = Field(description="the alert's or order's id (`period:...` for a control period)")
    level: str | None = Field(description="alert level, for alerts")
    order_kind: str | None = Field(description="`shutdown` or `curtailment`, for orders")
    percent: float | None = Field(description="a curtailment's cut in percent")
    enterprise: str
    name: str
    starts_at: datetime = Field(description="the window within the period")
    ends_at: datetime = Field(description="exclusive; a withdrawal ends it early")
    status: Status = Field(
        description="`violated`: a post_shutdown anomaly of the enterprise that names this "
        "alert or order among its evidence sources overlaps the window; "
        "`unverifiable`: no stored data of its devices in the window; `complied` otherwise; "
        "`unknown`: InfluxDB could not be read"
    )
    anomalies: list[str] = Field(description="ids of the anomalies that violate it")


class ComplianceCounts(_Out):
    complied: int
    violated: int
    unverifiable: int
    unknown: int


class TransportUse(_Out):
    """One enterprise's heavy-vehicle use over a month, from its gate records."""

    enterprise: str
    name: str
    heavy_movements: int = Field(description="heavy-vehicle passages, entering and leaving")
    heavy_user_days: int = Field(
        description="days with more than heavy_user_movements heavy movements (用车大户)"
    )
    heavy_user_movements: int = Field(description="the enterprise's heavy-user threshold")
    heavy_entries: int = Field(description="heavy vehicles entering")
    clean_entries: int = Field(description="of those, 国六 or electric")
    clean_share: float | None = Field(description="clean_entries / heavy_entries")


class TransportStatus(_Out):
    """An enterprise's heavy-user status and clean-transport share, from its gate records."""

    day: date = Field(description="the last complete Beijing day")
    heavy_movements: int = Field(description="heavy-vehicle passages that day, in and out")
    heavy_user: bool = Field(description="more than heavy_user_movements that day (用车大户)")
    heavy_user_movements: int
    month: str = Field(description="`YYYY-MM`, the Beijing month so far")
    heavy_entries: int
    clean_entries: int = Field(description="of the heavy entries, 国六 or electric")
    clean_share: float | None = Field(description="clean_entries / heavy_entries")


class ReportNote(_Out):
    code: Literal["influx_not_configured", "influx_unreadable"] = Field(
        description="what could not be read: `influx_not_configured` (no InfluxDB given) or "
        "`influx_unreadable` (a query failed); the page and the CSV show it in the language asked"
    )
    message: str = Field(description="the same in English")
    detail: str | None = Field(description="the error, as InfluxDB or the client gave it")


class Report(_Out):
    period: PeriodOut
    scope: ScopeOut
    generated_at: datetime
    anomalies: AnomalyCounts
    top_enterprises: list[EnterpriseCount] = Field(description="most alarms first, then most")
    timeliness: Timeliness
    transmission: Transmission | None = Field(description="null when InfluxDB is not readable")
    compliance: list[ComplianceRow]
    compliance_counts: ComplianceCounts
    problems: list[ReportNote] = Field(description="what could not be read, and why")
    transport: list[TransportUse] | None = Field(
        None,
        description="monthly reports: per enterprise with gates, heavy-vehicle movements, days "
        "as a heavy user and the clean-transport share; null for days or when InfluxDB "
        "cannot be read or counted (2.x)",
    )


class FeedbackRow(_Out):
    type: str
    region: str | None = Field(description="a region id; null in the rows over every region")
    cases: int = Field(description="cases opened in the month holding an anomaly of the type")
    verdicts: int = Field(description="of those, with a verdict now")
    confirmed: int
    false_alarm: int
    device_fault: int
    confirmed_share: float | None = Field(description="属实 / verdicts")
    false_alarm_share: float | None = Field(description="误报 / verdicts")
    device_fault_share: float | None = Field(description="设备故障 / verdicts")
    median_sign_h: float | None
    median_close_h: float | None
    overdue: int


class Threshold(_Out):
    key: str = Field(description="the registry (or configuration) key")
    value: str = Field(description="the value in force")
    default: bool = Field(description="the rule's default (not set in the registry)")
    places: int = Field(description="outlets, meters, lines or enterprises using this value")
    sample: list[str] = Field(description="some of them (at most 5)")


class HighFalseAlarm(_Out):
    type: str
    verdicts: int
    false_alarm: int
    false_alarm_share: float
    thresholds: list[Threshold]


class Feedback(_Out):
    period: PeriodOut
    scope: ScopeOut
    generated_at: datetime
    min_verdicts: int = Field(description="a type is listed high with at least this many")
    high_share: float = Field(description="... and a false-alarm share at least this")
    by_type: list[FeedbackRow] = Field(description="one row per type, over every region")
    by_type_region: list[FeedbackRow]
    high_false_alarm: list[HighFalseAlarm] | None = Field(
        description="types whose false-alarm share is high, with their thresholds (admin only; "
        "null for other roles)"
    )
