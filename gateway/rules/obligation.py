"""What obliges a line to stop or to cut its production, and since when without a break.

A line is under a shutdown when an explicit shutdown order covers it, when the plan in force
for a key in force (the alert level, a layer; declared or a calendar control period) stops it,
or when a schedule's window (错峰生产, a time-of-day window) stops it; under a curtailment
likewise with curtailment orders, plans and schedules. The plan of a key is the enterprise's
own, else its grade's default (`gateway.plans.plan_for`); the evidence says which, with the
plan's responsible person and contact. A heating-duty line is exempt from a 错峰 period with
make-up days (it owes them after). One obligation may pass from source to source (an orange
plan followed by a red one, a control period by an alert, a schedule window by an alert plan):
it is one obligation as long as there is no instant without a source, traced across the
regime's boundaries, the schedules' edges and dated grade changes; its ramp-down grace counts
from its start. Pure: a function of the regime and the registry.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.plans import PlanInForce, covers, edges, plan_for
from gateway.regime import PERIOD_PREFIX, Alert, ControlState, PlanKey, Regime
from gateway.registry import Enterprise, Schedule
from gateway.schedules import window_at

_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Source:
    """One order, alert plan, control period or schedule window that obliges the line."""

    kind: str  # "order", "alert plan", "control period" or "schedule"
    ref: str  # the order's or alert's id, or the period's or schedule's name
    level: str | None  # the plan key it brings: an alert level or a layer (event, reinforced)
    starts_at: datetime
    ends_at: datetime
    percent: float | None = None  # curtailments
    # the plan it applies (origin, grade, responsible...) or the schedule's terms
    plan: Mapping[str, object] | None = field(default=None, compare=False)
    schedule: Mapping[str, object] | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        if self.kind in ("order", "schedule"):
            return self.kind
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
        if self.plan is not None:
            out["plan"] = dict(self.plan)
        if self.schedule is not None:
            out["schedule"] = dict(self.schedule)
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


def alert_source(
    alert: Alert,
    percent: float | None = None,
    key: PlanKey | None = None,
    plan: PlanInForce | None = None,
) -> Source:
    """`alert` as a source; `level`: the plan key it brings that applies (`key`: a layer or
    its level), else its level; `plan`: the plan it applies (a grade's default applies from
    the grade change that brought it, at the earliest)."""
    if alert.id.startswith(PERIOD_PREFIX):
        name = alert.id.removeprefix(PERIOD_PREFIX).rpartition(":")[0]
        kind, ref = "control period", name
    else:
        kind, ref = "alert plan", alert.id
    level = key or alert.level or alert.layer
    start = alert.starts_at
    if plan is not None and plan.origin == "grade" and plan.grade_since is not None:
        start = max(start, plan.grade_since.astimezone(UTC))
    detail = plan.evidence() if plan is not None else None
    return Source(kind, ref, level, start, alert.ends_at, percent, plan=detail)


def schedule_terms(schedule: Schedule) -> dict[str, object]:
    """A schedule's terms as its evidence shows them."""
    out: dict[str, object] = {"name": schedule.name}
    if schedule.hours:
        out["daily_hours"] = list(schedule.hours)
    if schedule.months:
        out["in_months"] = sorted(set(schedule.months))
    if schedule.from_ is not None:
        out["yearly_span"] = [schedule.from_, schedule.to]
    return out


def exempt(ent: Enterprise, line: str, schedule: Schedule) -> bool:
    """A heating-duty line and a 错峰 period with make-up: exempt while it holds."""
    if schedule.make_up_days is None:
        return False
    return any(ln.id == line and ln.heating_duty for ln in ent.lines)


def schedule_sources(ent: Enterprise, line: str, at: datetime, stop: bool) -> list[Source]:
    """The windows in force at `at` of the schedules that stop (`stop`) or curtail `line`."""
    out = []
    for schedule in ent.all_schedules():
        if schedule.stop != stop or not covers(schedule, line) or exempt(ent, line, schedule):
            continue
        window = window_at(schedule, at)
        if window is not None:
            start, end = (t.astimezone(UTC) for t in window)
            terms = schedule_terms(schedule)
            out.append(
                Source("schedule", schedule.name, None, start, end, schedule.curtail, None, terms)
            )
    return out


def shutdown_sources(ent: Enterprise, line: str, control: ControlState) -> list[Source]:
    """What stops `line` at `control.at`: shutdown orders first, then the alerts of the keys
    in force whose plan stops it, then the schedules' windows. Empty when nothing does."""
    out = [
        Source("order", o.id, None, o.starts_at, o.ends_at)
        for o in control.orders_for_line(line, "shutdown")
    ]
    for key in control.plan_keys():
        plan = plan_for(ent, key, control.at)
        if plan is not None and plan.stops(line):
            out += [alert_source(a, key=key, plan=plan) for a in control.alerts_for(key)]
    return out + schedule_sources(ent, line, control.at, stop=True)


def curtailment_sources(ent: Enterprise, line: str, control: ControlState) -> list[Source]:
    """What curtails `line` at `control.at` (orders first, then the plans of the keys in
    force and the schedules' windows, the deepest cut first)."""
    out = [
        Source("order", o.id, None, o.starts_at, o.ends_at, o.percent)
        for o in control.orders_for_line(line, "curtailment")
        if o.percent is not None
    ]
    plans = []
    for key in control.plan_keys():
        plan = plan_for(ent, key, control.at)
        percent = plan.cut(line) if plan is not None else None
        if percent is not None:
            plans += [alert_source(a, percent, key, plan) for a in control.alerts_for(key)]
    plans += schedule_sources(ent, line, control.at, stop=False)
    # the deepest cut governs when several layers or schedules curtail the line
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
    boundaries = heapq.merge(
        regime.boundaries(ent.id, ent.region, at), edges(ent, at), reverse=True
    )
    for boundary in boundaries:
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
