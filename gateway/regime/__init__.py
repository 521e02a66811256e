"""The control regime: heavy-pollution alerts and explicit shutdown / curtailment orders.

Persisted in its own SQLite file (standard library) and held in memory, so `in_force`, the
query the rules ask on every event, is a pure function of the stored alerts and orders and of
its arguments: it never reads the clock. Windows are half-open: an alert or order is in force
at `t` when `starts_at <= t < ends_at`.

Alerts and orders are withdrawn, never deleted: a withdrawn one keeps its record, with
`withdrawn_at`, `withdrawn_by` and `withdraw_reason`, and is in force only before
`withdrawn_at` (as if its window had ended there; withdrawn before its start, it never was).
What the rules judged while it was in force stays judged, and late data from then is judged
under it too.

The models are in `model`, the store and the migrations of its file in `store`; their public
names are importable from here.
"""

from .model import (
    LAYERS,
    LEVEL_RANK,
    PERIOD_PREFIX,
    Alert,
    AlertLevel,
    AlertSpec,
    CalendarPeriod,
    ControlState,
    IssuedBy,
    Layer,
    Name,
    Order,
    OrderKind,
    OrderSpec,
    PlanKey,
    WithdrawnAt,
    WithdrawnBy,
    WithdrawReason,
    period_alerts,
)
from .store import MIGRATIONS, SCHEMA_VERSION, AlreadyWithdrawn, Regime

__all__ = [
    "LAYERS",
    "LEVEL_RANK",
    "MIGRATIONS",
    "PERIOD_PREFIX",
    "SCHEMA_VERSION",
    "Alert",
    "AlertLevel",
    "AlertSpec",
    "AlreadyWithdrawn",
    "CalendarPeriod",
    "ControlState",
    "IssuedBy",
    "Layer",
    "Name",
    "Order",
    "OrderKind",
    "OrderSpec",
    "PlanKey",
    "Regime",
    "WithdrawReason",
    "WithdrawnAt",
    "WithdrawnBy",
    "period_alerts",
]
