"""HJ 212 devices at outlets: keys, power codes and emission limits (dated, and tightened
under a level or layer)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..regime.model import PlanKey
from ..vocabulary import canonical
from .common import Moment, check_timezone

CrcPolicy = Literal["strict", "tolerant"]  # HJ 212 checksums: the standard's only, or MODBUS too
SM4_KEY_BYTES = 16


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

    since: Moment
    limit: float = Field(gt=0)


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
