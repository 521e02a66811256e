"""How each rule named in `gateway.anomalies.types` is built from what the gateway holds.

Adding a rule: its module here, its anomaly types in `anomalies/types.py`, its factory below.
A test checks that the two lists name the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from ..anomalies.types import RULES as RULE_NAMES
from ..regime import Regime
from ..registry import Registry
from .auth import RefusedDevices
from .base import Rule
from .bypass import BypassFlow
from .copied import ValuesCopied
from .curtailment import CurtailmentExceeded
from .data_gap import BackfillRequest, DataGap
from .emission_shutdown import EmissionDuringShutdown
from .flags import FlagAbuse
from .indicators import PlanIndicatorExceeded
from .mismatch import OperatingMismatch
from .offline import DeviceOffline
from .over_limit import OverLimit
from .pinned import ValuesPinned
from .rates import LowTransmission
from .shutdown import ProductionDuringShutdown
from .suspicious import SuspiciousData
from .treatment import TreatmentNotRunning
from .vehicles import BannedVehicleEntry


@dataclass(frozen=True, slots=True)
class Context:
    """What rules are built from."""

    registry: Callable[[], Registry]
    regime: Regime
    started_at: datetime
    request_backfill: BackfillRequest | None = None
    hourly_due_after_s: float = 1200.0


FACTORIES: dict[str, Callable[[Context], Rule]] = {
    "device_offline": lambda c: DeviceOffline(c.registry, c.started_at),
    "data_gap": lambda c: DataGap(c.registry, c.request_backfill, due_after_s=c.hourly_due_after_s),
    "low_transmission": lambda c: LowTransmission(c.registry),
    "over_limit": lambda c: OverLimit(c.registry, c.regime),
    "treatment_not_running": lambda c: TreatmentNotRunning(c.registry),
    "production_during_shutdown": lambda c: ProductionDuringShutdown(c.registry, c.regime),
    "emission_during_shutdown": lambda c: EmissionDuringShutdown(c.registry, c.regime),
    "suspicious_data": lambda c: SuspiciousData(c.registry),
    "bypass_flow": lambda c: BypassFlow(c.registry),
    "values_pinned": lambda c: ValuesPinned(c.registry),
    "values_copied": lambda c: ValuesCopied(c.registry),
    "flag_abuse": lambda c: FlagAbuse(c.registry),
    "operating_mismatch": lambda c: OperatingMismatch(c.registry, c.regime),
    "curtailment_exceeded": lambda c: CurtailmentExceeded(c.registry, c.regime),
    "banned_vehicle_entry": lambda c: BannedVehicleEntry(c.registry, c.regime),
    "plan_indicator_exceeded": lambda c: PlanIndicatorExceeded(c.registry, c.regime),
    "refused_devices": lambda _c: RefusedDevices(),
}


def build(context: Context) -> list[Rule]:
    """Every rule, in the order of the type list."""
    return [FACTORIES[name](context) for name in RULE_NAMES]


R = TypeVar("R")


def find(rules: list[Rule], kind: type[R]) -> R:
    """The rule of class `kind` among `rules`."""
    for rule in rules:
        if isinstance(rule, kind):
            return rule
    raise LookupError(f"no {kind.__name__} among the rules")
