"""The registry: enterprises and their devices, loaded from one TOML file and validated."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class Line(BaseModel):
    """A production line: measured by the production meters whose `line` is its id."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    treatment: list[FacilityLink] = []
    treatment_grace_s: float = Field(900.0, ge=0, description="treatment_not_running after")


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


def default_transport() -> dict[PlanKey, list[TransportRule]]:
    return {"orange": [TransportRule()], "red": [TransportRule()]}


class Plan(BaseModel):
    """An enterprise's plan for one alert level ("一厂一策"): lines to stop, lines to curtail."""

    model_config = ConfigDict(extra="forbid")

    stop_lines: list[str] = []
    curtail: dict[str, float] = Field(default_factory=dict, description="line -> percent cut")
    responsible: str = Field("", description="the plan's responsible person (shown in evidence)")
    contact: str = Field("", description="how to reach them (shown in evidence)")


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
    grade: str = ""
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
        used = [(f"enterprise {e.id}", e.region) for e in self.enterprises]
        problems = check_regions(self.regions, used)
        if problems:
            raise ValueError("; ".join(problems))
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
