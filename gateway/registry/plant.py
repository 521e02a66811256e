"""What runs in a plant: meters, production lines with their key indicators, treatment
facilities."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)


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
