"""What obliges a line to stop or to cut its production, and since when without a break.

A line is under a shutdown when an explicit shutdown order covers it, or when the plan of the
highest alert level in force (a declared alert or a calendar control period) stops it; under a
curtailment likewise with curtailment orders and plans. One obligation may pass from source to
source (an orange plan followed by a red one, a control period by an alert, an order by an
alert): it is one obligation as long as there is no instant without a source, and its
ramp-down grace counts from its start. Pure: a function of the regime and the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.regime import PERIOD_PREFIX, Alert, ControlState, PlanKey, Regime
from gateway.registry import Enterprise

_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Source:
    """One order, alert plan or control period that obliges the line."""

    kind: str  # "order", "alert plan" or "control period"
    ref: str  # the order's or alert's id, or the period's name
    level: str | None  # the plan key it brings: an alert level or a layer (event, reinforced)
    starts_at: datetime
    ends_at: datetime
    percent: float | None = None  # curtailments

    @property
    def label(self) -> str:
        if self.kind == "order":
            return "order"
        return f"{self.level} {self.kind}"

    def evidence(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "ref": self.ref,
            "level": self.level,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
        }
        if self.percent is not None:
            out["percent"] = self.percent
        return out


@dataclass(frozen=True, slots=True)
class Obligation:
    """A continuous obligation at one instant: since when, the grace, the source that governs
    now (`current`) and every source seen over it, earliest first."""

    since: datetime
    grace_until: datetime
    current: Source
    sources: tuple[Source, ...]

    def evidence(self) -> dict[str, object]:
        return {
            "source": self.current.label,
            "ref": self.current.ref,
            "since": self.since.isoformat(),
            "grace_until": self.grace_until.isoformat(),
            "sources": [s.evidence() for s in self.sources],
        }


SourcesOf = Callable[[Enterprise, str, ControlState], list[Source]]


def alert_source(alert: Alert, percent: float | None = None, key: PlanKey | None = None) -> Source:
    """`alert` as a source; `level`: the plan key it brings that applies (`key`: a layer or
    its level), else its level."""
    if alert.id.startswith(PERIOD_PREFIX):
        name = alert.id.removeprefix(PERIOD_PREFIX).rpartition(":")[0]
        kind, ref = "control period", name
    else:
        kind, ref = "alert plan", alert.id
    level = key or alert.level or alert.layer
    return Source(kind, ref, level, alert.starts_at, alert.ends_at, percent)


def shutdown_sources(ent: Enterprise, line: str, control: ControlState) -> list[Source]:
    """What stops `line` at `control.at`: shutdown orders first, then the alerts of the level
    in force whose plan stops it. Empty when nothing does."""
    out = [
        Source("order", o.id, None, o.starts_at, o.ends_at)
        for o in control.orders_for_line(line, "shutdown")
    ]
    for key in control.plan_keys():
        plan = ent.plans.get(key)
        if plan is not None and line in plan.stop_lines:
            out += [alert_source(a, key=key) for a in control.alerts_for(key)]
    return out


def curtailment_sources(ent: Enterprise, line: str, control: ControlState) -> list[Source]:
    """What curtails `line` at `control.at` (orders first, then the plan of the level)."""
    out = [
        Source("order", o.id, None, o.starts_at, o.ends_at, o.percent)
        for o in control.orders_for_line(line, "curtailment")
        if o.percent is not None
    ]
    plans = []
    for key in control.plan_keys():
        plan = ent.plans.get(key)
        if plan is not None and line in plan.curtail:
            percent = plan.curtail[line]
            plans += [alert_source(a, percent, key) for a in control.alerts_for(key)]
    # the deepest cut governs when several layers curtail the line
    return out + sorted(plans, key=lambda s: -(s.percent or 0.0))


def obligation(
    regime: Regime,
    ent: Enterprise,
    line: str,
    at: datetime,
    sources_of: SourcesOf = shutdown_sources,
    *,
    grace_s: float | None = None,
    control: ControlState | None = None,
) -> Obligation | None:
    """The obligation in force on `line` at `at`, traced back to its start, or None.
    `control`: what is in force at `at`, when the caller has it (one query per reading)."""
    now = sources_of(ent, line, control or regime.in_force(ent.id, ent.region, at))
    if not now:
        return None
    seen = {(s.kind, s.ref): s for s in now}
    since = min(s.starts_at for s in now)
    for boundary in regime.boundaries(ent.id, ent.region, at):
        if boundary > since:
            continue  # inside what is already known to be covered
        before = sources_of(ent, line, regime.in_force(ent.id, ent.region, boundary - _INSTANT))
        if not before:
            break
        for source in before:
            seen.setdefault((source.kind, source.ref), source)
        since = min(since, *(s.starts_at for s in before))
    grace = timedelta(seconds=ent.shutdown_grace_s if grace_s is None else grace_s)
    ordered = tuple(sorted(seen.values(), key=lambda s: (s.starts_at, s.ref)))
    return Obligation(since, since + grace, now[0], ordered)
