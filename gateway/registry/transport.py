"""Gates and the vehicles they judge: transport rules per plan key, standing rules, the
whitelist."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..cargo import Cargo
from ..plates import valid_plate
from ..regime.model import PlanKey
from ..regions import Hierarchy
from .common import BEIJING, Moment, quiet_window

if TYPE_CHECKING:
    from .enterprise import Enterprise


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
        local = at.astimezone(BEIJING)
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
    since: Moment
    until: Moment | None = Field(None, description="exclusive end; none: no end")
    enterprises: list[str] = []
    industries: list[str] = Field(default_factory=list, description="Enterprise.industry values")
    regions: list[str] = []

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
