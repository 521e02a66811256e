"""What plans ask: plans per level or layer, performance grades, recurring schedules and
calendar control periods."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..regime.model import AlertLevel, Layer
from .common import Moment, quiet_window


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

    since: Moment
    grade: Grade


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
