"""The registry: enterprises and their devices, loaded from one TOML file and validated."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .cargo import Cargo
from .errors import ConfigError, format_validation_error, load_toml
from .plates import valid_plate
from .regime.model import AlertLevel, Layer, PlanKey
from .regions import Hierarchy, Region, check_regions
from .vocabulary import canonical

_BEIJING = ZoneInfo("Asia/Shanghai")
CrcPolicy = Literal["strict", "tolerant"]  # HJ 212 checksums: the standard's only, or MODBUS too
SM4_KEY_BYTES = 16


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
        ) from None
    return value


def parse_key(text: str) -> bytes:
    """A device's SM4 key from the registry: 16 characters used as bytes, or 32 hex digits."""
    if len(text) == 2 * SM4_KEY_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    raw = text.encode("ascii", errors="strict") if text.isascii() else b""
    if len(raw) != SM4_KEY_BYTES:
        raise ValueError("an SM4 key is 16 ASCII characters or 32 hex digits")
    return raw


PowerQuantity = Literal["p_kw", "kwh", "ua", "ub", "uc", "ia", "ib", "ic", "pf", "switch"]


class PowerCode(BaseModel):
    """An HJ 212 factor code that carries one quantity of one meter (2025 ``ST=44``, vendors)."""

    model_config = ConfigDict(extra="forbid")

    meter: str = Field(min_length=1)
    quantity: PowerQuantity


class LimitChange(BaseModel):
    """A limit in force from a moment on (a special limit, ultra-low from a deadline)."""

    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="a date (Beijing midnight) or a time with its offset")
    limit: float = Field(gt=0)

    @field_validator("since", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):  # a TOML date
            return datetime(value.year, value.month, value.day)
        return value

    @field_validator("since")
    @classmethod
    def _beijing(cls, value: datetime) -> datetime:
        """Without an offset, Beijing time."""
        return value.replace(tzinfo=_BEIJING) if value.tzinfo is None else value


class PollutantLimit(BaseModel):
    """An emission limit of one pollutant at one outlet (hourly mean, converted to `ref_o2`);
    `changes` give the limits in force from later moments on."""

    model_config = ConfigDict(extra="forbid")

    limit: float = Field(gt=0, description="mg/m3 (gas) or mg/L (water), as the permit says")
    ref_o2: float | None = Field(None, ge=0, lt=21, description="reference O2 %, gas outlets")
    unit: str = ""
    changes: list[LimitChange] = Field(
        default_factory=list, description="from `since` on, `limit` instead (dated limits)"
    )
    control: dict[PlanKey, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="plan key -> limit while that level or layer is in force (the tightest "
        "of the keys in force applies, when below the dated limit)",
    )

    def at(self, moment: datetime | None) -> PollutantLimit:
        """This limit as in force at `moment` (None: the first one)."""
        if moment is None or not self.changes:
            return self
        value = self.limit
        for change in sorted(self.changes, key=lambda c: c.since):
            if change.since <= moment:
                value = change.limit
        return self if value == self.limit else self.model_copy(update={"limit": value})


class Outlet(BaseModel):
    """An HJ 212 device (data logger) at an outlet or monitoring point."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    mn: str = Field(min_length=1, max_length=64)
    password: str = ""
    open: bool = Field(False, description="accept any password")
    version: Literal["2005", "2017", "2025"] | None = None
    crc_policy: CrcPolicy | None = None
    sm4_key: str | None = None
    allow_plaintext: bool = Field(
        False, description="with sm4_key: take data uploads in clear too (migration)"
    )
    timezone: str | None = None
    kind: Literal["gas", "water", "vocs", "dust", "power", "other"] = "gas"
    power_codes: dict[str, PowerCode] = Field(
        default_factory=dict, description="factor code -> meter and quantity"
    )
    pollutants: dict[str, PollutantLimit] = Field(
        default_factory=dict, description="pollutant code -> limit (for over_limit)"
    )
    codes: list[str] = Field(
        default_factory=list,
        description="factor codes the device sends beyond the standard's (vendor codes)",
    )
    offline_after_s: float | None = Field(None, gt=0, description="silence before device_offline")
    records: list[Literal["minute", "day"]] = Field(
        default_factory=list,
        description="data_gap: the device also sends these records (2051, 2031), like hourly",
    )
    minute_interval_s: float = Field(
        600.0, ge=60, le=3600, description="data_gap: one minute record every this long"
    )
    stopped_flow: float | None = Field(
        None, ge=0, description="flow (a00000 / w00000) at or below which the outlet is stopped"
    )
    lines: list[str] = Field(default_factory=list, description="production lines it serves")
    bypass: bool = Field(
        False, description="a bypass flue or discharge: any flow above stopped_flow is an alarm"
    )
    bypass_persist_s: float = Field(300.0, gt=0, description="bypass_flow: flow this long")
    constant_after_s: float | None = Field(None, gt=0, description="suspicious_data: constant")
    min_transmission: float = Field(
        0.9, ge=0, le=1, description="low_transmission: hours with a record / hours expected"
    )
    min_validity: float = Field(
        0.9, ge=0, le=1, description="low_transmission: hours all flagged N / hours expected"
    )
    mismatch_persist_s: float = Field(
        1800.0, gt=0, description="flow_mismatch: no flow while producing, or flow while idle"
    )
    dilution_o2_rise: float = Field(
        3.0, gt=0, lt=21, description="dilution: O2 points above the outlet's normal"
    )
    dilution_persist_s: float = Field(7200.0, gt=0, description="dilution: held this long")
    flag_window_hours: int = Field(24, ge=2, le=168, description="flag_abuse: hours judged")
    flag_share: float = Field(
        0.3, gt=0, le=1, description="flag_abuse: share of hours flagged M, C, D, T or S"
    )
    flag_over_limit_hours: int = Field(
        2, ge=1, description="flag_abuse: or this many flagged hours with a value over its limit"
    )
    copied_hours: int = Field(6, ge=2, description="values_copied: equal hours in a window")
    copied_window: int = Field(12, ge=2, le=168, description="values_copied: hours compared")
    pinned_hours: int = Field(12, ge=3, le=168, description="values_pinned: hours in a window")
    pinned_band: float = Field(
        0.8, gt=0, lt=1, description="values_pinned: every value within this share of the limit"
    )
    pinned_cv: float = Field(
        0.01, gt=0, lt=1, description="values_pinned: and their variation (std / mean) under this"
    )
    zeros_after_s: float | None = Field(None, gt=0, description="suspicious_data: zeros, flag F")

    def limit_for(self, code: str, at: datetime | None = None) -> tuple[str, PollutantLimit] | None:
        """(2017 code, limit in force at `at`) of a factor, whether the registry or the device
        wrote its 2005 or its 2017 code."""
        wanted = canonical(code, self.version)
        for key, limit in self.pollutants.items():
            if canonical(key, self.version) == wanted:
                return wanted, limit.at(at)
        return None

    @field_validator("sm4_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            parse_key(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _password(self) -> Outlet:
        if not self.open and not self.password:
            raise ValueError("an outlet needs a password unless it is open = true")
        return self

    @model_validator(mode="after")
    def _one_limit_per_factor(self) -> Outlet:
        seen: dict[str, str] = {}
        for key in self.pollutants:
            code = canonical(key, self.version)
            if code in seen:
                raise ValueError(
                    f"outlet {self.id!r}: pollutants {seen[code]!r} and {key!r} are one factor"
                )
            seen[code] = key
        return self

    @model_validator(mode="after")
    def _copied_window(self) -> Outlet:
        if self.copied_hours > self.copied_window:
            raise ValueError(f"outlet {self.id!r}: copied_hours exceeds copied_window")
        return self


class Meter(BaseModel):
    """An electricity metering point (MQTT topic ``power/{enterprise}/{id}``, or HJ 212 codes)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    role: Literal["production", "treatment", "total"]
    line: str = Field("", description="production line or treatment facility it measures")
    ct_ratio: float = Field(1.0, gt=0, description="current transformer ratio")
    pt_ratio: float = Field(1.0, gt=0, description="voltage transformer ratio")
    rollover_at: float | None = Field(None, gt=0, description="counter wraps to 0 here (kWh)")
    on_threshold_kw: float = Field(1.0, ge=0, description="running at or above this power")
    offline_after_s: float | None = Field(None, gt=0, description="silence before device_offline")
    report_interval_s: float = Field(
        300.0, ge=10, le=3600, description="completeness: one reading expected every this long"
    )


class FacilityLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility: str = Field(min_length=1)
    duty: bool = Field(True, description="False for a standby facility")


class Indicator(BaseModel):
    """A key indicator a plan names for a line (or process step): the count of its production
    meters running (`running`: furnaces in operation), a meter's load in % of `rated_kw`
    (`load`), or a value an HJ 212 device reports (`device`: `mn` and factor `code`, standard,
    vendor or 2025 operating-condition, at `interval`)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[^/]+$")
    name: str = ""
    source: Literal["running", "load", "device"]
    meter: str = Field("", description="load: the meter")
    rated_kw: float | None = Field(None, gt=0, description="load: 100 % is this power")
    mn: str = Field("", description="device: the data logger")
    code: str = Field("", description="device: the factor code it reports the value under")
    interval: Literal["rtd", "minute", "hour"] = Field("rtd", description="device: records")
    persist_s: float = Field(
        1800.0, gt=0, description="plan_indicator_exceeded: beyond the plan's limit this long"
    )

    @model_validator(mode="after")
    def _source(self) -> Indicator:
        if self.source == "load" and (not self.meter or self.rated_kw is None):
            raise ValueError(f"indicator {self.id!r}: a load needs meter and rated_kw")
        if self.source == "device" and (not self.mn or not self.code):
            raise ValueError(f"indicator {self.id!r}: a device value needs mn and code")
        return self


class Line(BaseModel):
    """A production line: measured by the production meters whose `line` is its id."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    treatment: list[FacilityLink] = []
    treatment_grace_s: float = Field(900.0, ge=0, description="treatment_not_running after")
    heating_duty: bool = Field(
        False, description="holds a heating duty: exempt from a 错峰 stop, owes its days after"
    )
    indicators: list[Indicator] = Field(
        default_factory=list, description="key indicators plans may limit (`<line>/<id>`)"
    )


class StateSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mn: str = Field(min_length=1)
    facility: str = Field(min_length=1, description="the SBx code, e.g. SB1")


class Facility(BaseModel):
    """A treatment facility: running when one of its meters runs, or its SBx-RS says 1."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    meters: list[str] = []
    state: StateSource | None = None


class TransportRule(BaseModel):
    """Vehicles banned at one alert level (a practice that varies by city). A level may have
    several (heavy trucks of 国5 and below carrying muck, and non-road machinery of 国2)."""

    model_config = ConfigDict(extra="forbid")

    banned_fuels: list[str] = ["diesel", "gas"]
    banned_classes: list[str] = ["heavy"]
    max_banned_stage: int = Field(4, ge=-1, le=6, description="国N and below banned; -1: none")
    banned_cargo: list[Cargo] = Field(
        default_factory=list,
        description="only when carrying one of these (gateway/cargo.py); empty: any cargo",
    )
    directions: list[Literal["in", "out"]] = Field(
        ["in"], min_length=1, description='"in": entering; "out" too where a plan bans 进出'
    )
    require_registration: bool = Field(
        False,
        description="bans a vehicle of banned_classes (non-road machinery) whose record carries "
        "no registration code (登记编码), its stage and fuel aside; judged only at gates with "
        "registration_codes = true",
    )
    time_windows: list[str] = Field(
        default_factory=list,
        description='Beijing times of day it bans in ("07:00-09:00"; staggered transport); '
        "empty: all day",
    )
    months: list[int] = Field(
        default_factory=list, description="months (1-12) it bans in; empty: every month"
    )

    @field_validator("time_windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for text in value:
            quiet_window(text)  # ValueError names the text
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[int]) -> list[int]:
        bad = [m for m in value if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months are 1 to 12, not {bad[0]}")
        return value

    def in_window(self, at: datetime) -> bool:
        """Whether `at` (Beijing time) lies in its months and times of day."""
        local = at.astimezone(_BEIJING)
        if self.months and local.month not in self.months:
            return False
        if not self.time_windows:
            return True
        minute = local.hour * 60 + local.minute
        for text in self.time_windows:
            start, end = quiet_window(text)
            if (start <= minute < end) if start < end else (minute >= start or minute < end):
                return True
        return False


class StandingTransportRule(TransportRule):
    """A transport rule always in force outside alerts ("from 2026-10-01 国六 or electric only"),
    from `since` (a date: Beijing midnight) until `until` (exclusive; none: open-ended), for
    the enterprises it names, of its industries, or in its regions (and those under them)."""

    name: str = Field(min_length=1, max_length=200)
    since: datetime = Field(description="a date (Beijing midnight) or a time with its offset")
    until: datetime | None = Field(None, description="exclusive end; none: no end")
    enterprises: list[str] = []
    industries: list[str] = Field(default_factory=list, description="Enterprise.industry values")
    regions: list[str] = []

    @field_validator("since", "until", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):  # a TOML date
            return datetime(value.year, value.month, value.day)
        return value

    @field_validator("since", "until")
    @classmethod
    def _beijing(cls, value: datetime | None) -> datetime | None:
        """Without an offset, Beijing time."""
        return value.replace(tzinfo=_BEIJING) if value and value.tzinfo is None else value

    @model_validator(mode="after")
    def _scoped(self) -> StandingTransportRule:
        if not (self.enterprises or self.industries or self.regions):
            raise ValueError(
                f"standing rule {self.name!r} covers no enterprise, industry or region"
            )
        if self.until is not None and self.until <= self.since:
            raise ValueError(f"standing rule {self.name!r}: until must be after since")
        return self

    def rule(self) -> TransportRule:
        """Its vehicle terms alone (what the evidence shows as `rule`)."""
        terms = self.model_dump(include=set(TransportRule.model_fields))
        return TransportRule.model_validate(terms)

    def covers(self, ent: Enterprise, at: datetime, within: Hierarchy) -> bool:
        """In force at `at` for `ent`: named, of a listed industry, or in a listed region."""
        if not (self.since <= at and (self.until is None or at < self.until)):
            return False
        if ent.id in self.enterprises or (ent.industry and ent.industry in self.industries):
            return True
        return bool(ent.region and self.regions) and within.within(ent.region, self.regions)


def default_transport() -> dict[PlanKey, list[TransportRule]]:
    return {"orange": [TransportRule()], "red": [TransportRule()]}


class IndicatorLimit(BaseModel):
    """A plan's limit of a key indicator: at most `max`, at least `min`, or both."""

    model_config = ConfigDict(extra="forbid")

    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> IndicatorLimit:
        if self.max is None and self.min is None:
            raise ValueError("an indicator limit needs max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"indicator limit: min {self.min:g} is above max {self.max:g}")
        return self


Percent = Annotated[float, Field(gt=0, le=100)]


class Plan(BaseModel):
    """An enterprise's plan for one alert level ("一厂一策"): lines to stop, lines to curtail;
    `stop_all` / `curtail_all` for every production line (what a grade's default says)."""

    model_config = ConfigDict(extra="forbid")

    stop_lines: list[str] = []
    curtail: dict[str, Percent] = Field(default_factory=dict, description="line -> percent cut")
    stop_all: bool = Field(False, description="stop every production line")
    curtail_all: Percent | None = Field(
        None, description="percent cut of every line the plan does not name"
    )
    responsible: str = Field("", description="the plan's responsible person (shown in evidence)")
    contact: str = Field("", description="how to reach them (shown in evidence)")
    indicators: dict[str, IndicatorLimit] = Field(
        default_factory=dict, description='"<line>/<indicator>" -> its limit under this plan'
    )


Grade = Literal["A+", "A", "B", "C", "D", "引领性", "非重点"]  # 绩效分级, with leading and non-key


class GradePlan(Plan):
    """A grade's default plan for one level: it cannot name lines (`stop_all`, `curtail_all`)."""

    @model_validator(mode="after")
    def _no_lines(self) -> GradePlan:
        if self.stop_lines or self.curtail or self.indicators:
            raise ValueError(
                "a grade's default plan names no line nor indicator: use stop_all or curtail_all"
            )
        return self


class GradeChange(BaseModel):
    """The enterprise's performance grade from a moment on."""

    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="a date (Beijing midnight) or a time with its offset")
    grade: Grade

    @field_validator("since", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):  # a TOML date
            return datetime(value.year, value.month, value.day)
        return value

    @field_validator("since")
    @classmethod
    def _beijing(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=_BEIJING) if value.tzinfo is None else value


_MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


def month_day(text: str) -> tuple[int, int]:
    """("11-15") -> (11, 15); ValueError when malformed, not a day, or 02-29."""
    found = _MONTH_DAY.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not MM-DD")
    month, day = int(found.group(1)), int(found.group(2))
    try:
        date(2025, month, day)  # not a leap year: 02-29 is not in every year
    except ValueError:
        raise ValueError(f"{text!r} is not a day of every year") from None
    return month, day


class Schedule(BaseModel):
    """A recurring window that stops or curtails lines (Beijing time): daily `hours`, in
    `months` or in a yearly `from`/`to` span (inclusive days; 错峰生产); `make_up_days` makes
    a stop span a 错峰 period that heating-duty lines are exempt from and make up after."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    lines: list[str] = []
    all: bool = Field(False, description="every production line of the enterprise")
    stop: bool = False
    curtail: Percent | None = None
    hours: list[str] = Field(default_factory=list, description='daily windows "HH:MM-HH:MM"')
    months: list[Annotated[int, Field(ge=1, le=12)]] = []
    from_: str | None = Field(None, alias="from", description='"MM-DD", first day')
    to: str | None = Field(None, description='"MM-DD", last day (may be in the next year)')
    make_up_days: int | None = Field(
        None, ge=1, le=366, description="heating-duty lines make up within this after the span"
    )

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        for text in value:
            quiet_window(text)
        return value

    @field_validator("from_", "to")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        if value is not None:
            month_day(value)
        return value

    @model_validator(mode="after")
    def _valid(self) -> Schedule:
        where = f"schedule {self.name!r}"
        if self.stop == (self.curtail is not None):
            raise ValueError(f"{where}: stop = true or curtail = <percent>, one of them")
        if (self.from_ is None) != (self.to is None):
            raise ValueError(f"{where}: from and to go together")
        if self.months and self.from_ is not None:
            raise ValueError(f"{where}: months or from/to, not both")
        if not (self.hours or self.months or self.from_):
            raise ValueError(f"{where}: needs hours, months or from/to")
        if self.make_up_days is not None and (not self.stop or self.from_ is None or self.hours):
            raise ValueError(f"{where}: make_up_days needs stop and from/to, without hours")
        return self


class IndustrySchedule(Schedule):
    """A schedule of every enterprise of `industries` (all their lines), unless the
    enterprise has a schedule of the same name (which replaces it)."""

    industries: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_line(self) -> IndustrySchedule:
        if self.lines:
            raise ValueError(f"schedule {self.name!r}: a registry schedule names no line")
        return self


class WhitelistEntry(BaseModel):
    """A vehicle exempt from transport bans (safety, livelihood) within a validity window."""

    model_config = ConfigDict(extra="forbid")

    plate: str = Field(description="normalised at load: 冀A·12345 is 冀A12345 (gateway.plates)")
    valid_from: datetime
    valid_to: datetime
    reason: str = ""

    @field_validator("plate")
    @classmethod
    def _plate(cls, value: str) -> str:
        return valid_plate(value)  # PlateError is a ValueError: a config error naming the key


_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@functools.cache  # the offline rule reads every gate's windows at every tick
def quiet_window(text: str) -> tuple[int, int]:
    """("22:00-06:00") -> (start, end) in minutes of the day; an end before the start wraps
    past midnight. ValueError when malformed or empty (start = end)."""
    found = _QUIET.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = map(int, found.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{text!r} is empty")
    return start, end


class Gate(BaseModel):
    """A gate with a vehicle access system (MQTT topic ``gate/{enterprise}/{id}``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    offline_after_s: float | None = Field(
        None, gt=0, description="device_offline: silence outside quiet_hours [4 h]"
    )
    quiet_hours: list[str] = Field(
        ["22:00-06:00"],
        description="Beijing-time windows when no vehicle passing is normal (silence there "
        "does not count); [] for a gate in use day and night",
    )
    registration_codes: bool = Field(
        False,
        description="its system sends non-road machinery's registration code (登记编码): only "
        "then do require_registration rules judge its records",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str]) -> list[str]:
        minutes: set[int] = set()
        for text in value:
            start, end = quiet_window(text)
            span = set(range(start, end)) if start < end else {*range(start, 1440), *range(end)}
            if minutes & span:
                raise ValueError(f"quiet_hours overlap at {text!r}: write them as one window")
            minutes |= span
        return value


class Enterprise(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    region: str = ""
    industry: str = ""
    grade: Grade | Literal[""] = Field("", description="performance grade (绩效分级)")
    grade_changes: list[GradeChange] = Field(
        default_factory=list, description="the grade from `since` on (dated grade changes)"
    )
    schedules: list[Schedule] = Field(
        default_factory=list, description="recurring stop / curtail windows (错峰, time of day)"
    )
    outlets: list[Outlet] = []
    meters: list[Meter] = []
    gates: list[Gate] = []
    lines: list[Line] = []
    facilities: list[Facility] = []
    transport: dict[PlanKey, list[TransportRule]] = Field(
        default_factory=default_transport,
        description="per alert level or layer (event, reinforced), one rule or several; "
        "default: orange and red ban diesel/gas heavy trucks <= 国4",
    )
    whitelist: list[WhitelistEntry] = []
    plans: dict[PlanKey, Plan] = Field(
        default_factory=dict, description="per alert level or layer (event, reinforced)"
    )
    shutdown_grace_s: float = Field(7200.0, ge=0, description="ramp-down time after an order")
    shutdown_persist_s: float = Field(900.0, ge=0, description="running this long opens")
    curtail_window_s: float = Field(4 * 3600.0, gt=0, description="energy compared over this")
    curtail_tolerance: float = Field(1.1, ge=1.0, description="allowed x (1 - cut) x baseline")
    baseline_days: int = Field(7, ge=1, le=60, description="recent days the baseline comes from")
    # set at registry load from the registry's `grades` and industry `schedules`
    _grade_plans: dict[str, dict[PlanKey, GradePlan]] = PrivateAttr(default_factory=dict)
    _industry_schedules: list[Schedule] = PrivateAttr(default_factory=list)
    heavy_user_movements: int | None = Field(
        None, ge=1, description="heavy user (用车大户) above this many heavy movements a day"
    )

    @field_validator("transport", mode="before")
    @classmethod
    def _rules_per_level(cls, value: Any) -> Any:
        """One rule per level (a table) or several (an array of tables)."""
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _power_codes_name_meters(self) -> Enterprise:
        meters = {m.id for m in self.meters}
        for outlet in self.outlets:
            for code, target in outlet.power_codes.items():
                if target.meter not in meters:
                    raise ValueError(
                        f"outlet {outlet.id!r}: power code {code!r} names meter "
                        f"{target.meter!r}, which enterprise {self.id!r} does not have"
                    )
        return self

    @model_validator(mode="after")
    def _links_resolve(self) -> Enterprise:
        meters = {m.id for m in self.meters}
        facilities = {f.id for f in self.facilities}
        for facility in self.facilities:
            for meter in facility.meters:
                if meter not in meters:
                    raise ValueError(f"facility {facility.id!r} names unknown meter {meter!r}")
        for line in self.lines:
            for link in line.treatment:
                if link.facility not in facilities:
                    raise ValueError(f"line {line.id!r} names unknown facility {link.facility!r}")
        return self

    @model_validator(mode="after")
    def _indicators_resolve(self) -> Enterprise:
        meters = {m.id for m in self.meters}
        named: set[str] = set()
        for line in self.lines:
            for ind in line.indicators:
                key = f"{line.id}/{ind.id}"
                if key in named:
                    raise ValueError(f"line {line.id!r}: indicator {ind.id!r} appears twice")
                named.add(key)
                if ind.source == "load" and ind.meter not in meters:
                    raise ValueError(f"indicator {key!r} names unknown meter {ind.meter!r}")
        lines = {ln.id for ln in self.lines}
        for level, plan in self.plans.items():
            for key in plan.indicators:
                line_id, _, ind_id = key.partition("/")
                if line_id not in lines:
                    raise ValueError(
                        f"plans.{level}.indicators: {key!r} names unknown line {line_id!r} "
                        "(write <line>/<indicator>)"
                    )
                if key not in named:
                    raise ValueError(
                        f"plans.{level}.indicators: {key!r}: line {line_id!r} has no indicator "
                        f"{ind_id!r}"
                    )
        return self

    def grade_plans(self) -> dict[str, dict[PlanKey, GradePlan]]:
        """The registry's default plans per grade and key."""
        return self._grade_plans

    def all_schedules(self) -> list[Schedule]:
        """Its own schedules, then its industry's that it does not replace by name."""
        return [*self.schedules, *self._industry_schedules]

    @model_validator(mode="after")
    def _schedules_name_lines(self) -> Enterprise:
        lines = {ln.id for ln in self.lines}
        names: set[str] = set()
        for schedule in self.schedules:
            where = f"enterprise {self.id!r}: schedule {schedule.name!r}"
            if schedule.name in names:
                raise ValueError(f"{where} appears twice")
            names.add(schedule.name)
            if bool(schedule.lines) == schedule.all:
                raise ValueError(f"{where}: name lines or all = true, one of them")
            unknown = sorted(set(schedule.lines) - lines)
            if unknown:
                raise ValueError(f"{where} names unknown line {unknown[0]!r}")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> Enterprise:
        for kind, ids in (
            ("meter", [m.id for m in self.meters]),
            ("gate", [g.id for g in self.gates]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{kind} id {dupes[0]!r} appears twice in enterprise {self.id!r}")
        return self


class ControlPeriod(BaseModel):
    """A calendar control period (a major event, staggered production): in force like an alert
    of `level`, or as a layer of control (`layer`: event, reinforced; the enterprises' plans of
    that layer apply too), or both, for its regions or enterprises, during each of its
    windows."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    level: AlertLevel | None = None
    layer: Layer | None = None
    regions: list[str] = []
    enterprises: list[str] = []
    windows: list[tuple[datetime, datetime]] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> ControlPeriod:
        if not self.regions and not self.enterprises:
            raise ValueError(f"control period {self.name!r} covers no region and no enterprise")
        if self.level is None and self.layer is None:
            raise ValueError(f"control period {self.name!r} needs a level, a layer or both")
        for start, end in self.windows:
            if start.tzinfo is None or end.tzinfo is None or end <= start:
                raise ValueError(
                    f"control period {self.name!r}: windows need offsets and end after start"
                )
        return self


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enterprises: list[Enterprise] = []
    control_periods: list[ControlPeriod] = []
    regions: list[Region] = Field(
        [], description="province > city > county; scopes of accounts lie in it"
    )
    transport_standing: list[StandingTransportRule] = Field(
        [], description="transport rules always in force outside alerts"
    )
    heavy_user_movements: int = Field(
        10, ge=1, description="heavy user (用车大户) above this many heavy movements a day"
    )
    grades: dict[Grade, dict[PlanKey, GradePlan]] = Field(
        default_factory=dict, description="default plans per grade and level or layer"
    )
    schedules: list[IndustrySchedule] = Field(
        default_factory=list, description="recurring windows of every enterprise of an industry"
    )

    @model_validator(mode="after")
    def _defaults(self) -> RegistryFile:
        """Gives each enterprise the grade defaults and its industry's schedules."""
        for ent in self.enterprises:
            own = {s.name for s in ent.schedules}
            ent._grade_plans = {str(grade): plans for grade, plans in self.grades.items()}
            ent._industry_schedules = [
                s for s in self.schedules if ent.industry in s.industries and s.name not in own
            ]
        return self

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        seen_mn: dict[str, str] = {}
        seen_ent: set[str] = set()
        for ent in self.enterprises:
            if ent.id in seen_ent:
                raise ValueError(f"enterprise id {ent.id!r} appears twice")
            seen_ent.add(ent.id)
            for outlet in ent.outlets:
                where = f"{ent.id}/{outlet.id}"
                if outlet.mn in seen_mn:
                    raise ValueError(f"MN {outlet.mn!r} of {where} is also {seen_mn[outlet.mn]}")
                seen_mn[outlet.mn] = where
        for ent in self.enterprises:
            for line in ent.lines:
                for ind in line.indicators:
                    owner = seen_mn.get(ind.mn, ent.id).partition("/")[0]
                    if ind.source == "device" and owner != ent.id:
                        raise ValueError(
                            f"indicator {ent.id}/{line.id}/{ind.id}: MN {ind.mn!r} is a device "
                            f"of enterprise {owner!r}"
                        )
        used = [(f"enterprise {e.id}", e.region) for e in self.enterprises]
        problems = check_regions(self.regions, used)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _standing_resolve(self) -> RegistryFile:
        known = {e.id for e in self.enterprises}
        regions = {r.id for r in self.regions}
        names: set[str] = set()
        for i, rule in enumerate(self.transport_standing):
            key = f"transport_standing[{i}] ({rule.name!r})"
            if rule.name in names:
                raise ValueError(f"{key}: name appears twice")
            names.add(rule.name)
            for ent in rule.enterprises:
                if ent not in known:
                    raise ValueError(f"{key}.enterprises: unknown enterprise {ent!r}")
            for region in rule.regions:
                if regions and region not in regions:
                    raise ValueError(f"{key}.regions: unknown region {region!r}")
        return self


@dataclass(frozen=True, slots=True)
class Device:
    """A registered HJ 212 device as the adapters use it."""

    enterprise: str
    outlet: Outlet
    sm4_key: bytes | None
    timezone: ZoneInfo | None


class Registry:
    def __init__(self, data: RegistryFile, source: str = "<memory>") -> None:
        self.data = data
        self.source = source
        self._by_mn: dict[str, Device] = {}
        self._meters = {(e.id, m.id): m for e in data.enterprises for m in e.meters}
        self._gates = {(e.id, g.id): g for e in data.enterprises for g in e.gates}
        self._enterprises = {e.id: e for e in data.enterprises}
        self.regions = Hierarchy(data.regions)
        for ent in data.enterprises:
            for outlet in ent.outlets:
                self._by_mn[outlet.mn] = Device(
                    enterprise=ent.id,
                    outlet=outlet,
                    sm4_key=parse_key(outlet.sm4_key) if outlet.sm4_key else None,
                    timezone=ZoneInfo(outlet.timezone) if outlet.timezone else None,
                )

    def device(self, mn: str) -> Device | None:
        return self._by_mn.get(mn)

    def devices(self) -> Iterator[Device]:
        return iter(self._by_mn.values())

    def meter(self, enterprise: str, meter: str) -> Meter | None:
        return self._meters.get((enterprise, meter))

    def gate(self, enterprise: str, gate: str) -> Gate | None:
        return self._gates.get((enterprise, gate))

    def enterprise(self, enterprise_id: str) -> Enterprise | None:
        return self._enterprises.get(enterprise_id)

    def standing_transport(self, ent: Enterprise, at: datetime) -> list[StandingTransportRule]:
        """The standing transport rules in force for `ent` at `at`."""
        return [r for r in self.data.transport_standing if r.covers(ent, at, self.regions)]

    def heavy_user_movements(self, ent: Enterprise) -> int:
        """Heavy movements a day above which `ent` is a heavy user (用车大户)."""
        if ent.heavy_user_movements is not None:
            return ent.heavy_user_movements
        return self.data.heavy_user_movements

    def counts(self) -> dict[str, int]:
        """Enterprises and HJ 212 devices, as reloads report them."""
        return {"enterprises": len(self.data.enterprises), "devices": len(self._by_mn)}

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Load and validate; raises ConfigError listing every problem with its key."""
        raw = load_toml(path)
        try:
            return cls(RegistryFile.model_validate(raw), str(path))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(path, exc)) from None
