"""An enterprise as the registry declares it, with the checks that tie its parts together."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ..regime.model import PlanKey
from .measures import Grade, GradeChange, GradePlan, Plan, Schedule
from .outlets import Outlet
from .plant import Facility, Line, Meter
from .transport import Gate, TransportRule, WhitelistEntry, default_transport


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
