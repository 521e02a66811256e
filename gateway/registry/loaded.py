"""The registry file as a whole, and the `Registry` the adapters and rules read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ..errors import ConfigError, format_validation_error, load_toml
from ..regime.model import PlanKey
from ..regions import Hierarchy, Region, check_regions
from .enterprise import Enterprise
from .measures import ControlPeriod, Grade, GradePlan, IndustrySchedule
from .outlets import Outlet, parse_key
from .plant import Meter
from .transport import Gate, StandingTransportRule


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
