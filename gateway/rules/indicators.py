"""`plan_indicator_exceeded`: a key indicator of a line that a plan in force limits (furnaces
in operation, load %, kiln temperature) stays beyond the plan's limit for its persistence
[30 min] (event time), after the ramp-down grace of the plan's obligation [2 h].

An indicator's value is read where it comes from: `running`, the count of the line's production
meters that run; `load`, a meter's `p_kw` in % of its `rated_kw`; `device`, the value an HJ 212
device reports under a factor code (an `emission` record of the indicator's interval, its `Rtd`
or `Avg`; or a 2025 operating condition, its numeric `Rtd`). Values flagged other than N neither
open nor close. Every plan key in force (layers, then the alert level) that limits the
indicator applies, the tightest limit governs; the obligation counts from the start of the
continuous run of alerts or periods that bring such a plan, as shutdowns do
(`obligation.obligation`). The anomaly names the plan key, its source, the plan's responsible
person and contact; it closes at the first value back within the limit, or once no plan in
force limits the indicator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.plans import plan_for
from gateway.regime import ControlState, PlanKey, Regime
from gateway.registry import Enterprise, Indicator, IndicatorLimit, Line, Plan, Registry
from gateway.vocabulary import canonical

from .base import BaseRule, MeterStates, by_time, event_time
from .obligation import Obligation, Source, alert_source, obligation

_BEIJING = ZoneInfo("Asia/Shanghai")
_KEEP_VALUES = 12  # values kept in the evidence: the first, then the latest


def plan_of(ent: Enterprise, key: PlanKey, at: datetime) -> Plan | None:
    """The plan of `ent` under `key` in force at `at` (its own, else its grade's default)."""
    found = plan_for(ent, key, at)
    return found.plan if found is not None else None


@dataclass(frozen=True, slots=True)
class Bound:
    """The limit that governs an indicator at one instant: the tightest of the plans in force,
    and the plan key (with its plan) that sets it."""

    max: float | None
    min: float | None
    key: PlanKey
    plan: Plan

    def beyond(self, value: float) -> bool:
        return (self.max is not None and value > self.max) or (
            self.min is not None and value < self.min
        )


def limits_in_force(
    ent: Enterprise, name: str, control: ControlState
) -> list[tuple[PlanKey, Plan, IndicatorLimit]]:
    """(key, plan, limit) of every plan key in force whose plan limits indicator `name`
    (`<line>/<id>`), in the order of `control.plan_keys()`."""
    out = []
    for key in control.plan_keys():
        plan = plan_of(ent, key, control.at)
        limit = plan.indicators.get(name) if plan is not None else None
        if plan is not None and limit is not None and control.alerts_for(key):
            out.append((key, plan, limit))
    return out


def governing(limits: list[tuple[PlanKey, Plan, IndicatorLimit]], value: float) -> Bound | None:
    """The tightest max and min of `limits`; its key is that of the first limit `value`
    breaks (else of the first limit)."""
    if not limits:
        return None
    maxes = [lim.max for _, _, lim in limits if lim.max is not None]
    mins = [lim.min for _, _, lim in limits if lim.min is not None]
    top, bottom = (min(maxes) if maxes else None), (max(mins) if mins else None)
    key, plan, _ = limits[0]
    for k, p, lim in limits:
        if (lim.max is not None and value > lim.max and lim.max == top) or (
            lim.min is not None and value < lim.min and lim.min == bottom
        ):
            key, plan = k, p
            break
    return Bound(top, bottom, key, plan)


def indicator_sources(name: str) -> Callable[[Enterprise, str, ControlState], list[Source]]:
    """What obliges the line to keep indicator `name` within a limit (for `obligation`)."""

    def sources(ent: Enterprise, line: str, control: ControlState) -> list[Source]:
        return [
            alert_source(alert, key=key)
            for key, _, _ in limits_in_force(ent, name, control)
            for alert in control.alerts_for(key)
        ]

    return sources


@dataclass(frozen=True, slots=True)
class _Watched:
    ent: str
    line: str
    indicator: Indicator


class _Index:
    """Where each reading feeds indicators, built once per registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.by_meter: dict[tuple[str, str], list[_Watched]] = {}
        self.by_device: dict[tuple[str, str, str], list[_Watched]] = {}
        for ent in registry.data.enterprises:
            for line in ent.lines:
                for ind in line.indicators:
                    watched = _Watched(ent.id, line.id, ind)
                    if ind.source == "running":
                        for meter in _production_meters(ent, line):
                            self.by_meter.setdefault((ent.id, meter), []).append(watched)
                    elif ind.source == "load":
                        self.by_meter.setdefault((ent.id, ind.meter), []).append(watched)
                    else:
                        device = registry.device(ind.mn)
                        version = device.outlet.version if device is not None else None
                        key = (ind.mn, canonical(ind.code, version), ind.interval)
                        self.by_device.setdefault(key, []).append(watched)
        self.mns = {mn for mn, _, _ in self.by_device}  # a frame of another MN costs a lookup


def _production_meters(ent: Enterprise, line: Line) -> list[str]:
    return [m.id for m in ent.meters if m.role == "production" and m.line == line.id]


class PlanIndicatorExceeded(BaseRule):
    name = "plan_indicator_exceeded"
    measurements = frozenset({"power", "emission", "operating_condition"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self.meters = MeterStates()
        self._index: _Index | None = None
        self.values: dict[str, list[dict[str, object]]] = {}  # subject -> values beyond

    def _watch(self) -> _Index:
        registry = self.registry()
        if self._index is None or self._index.registry is not registry:
            self._index = _Index(registry)
        return self._index

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out: list[Anomaly] = []
        for readings in by_time(points):  # a meter's array: each reading at its own time
            self.meters.update(readings)
            at = event_time(readings[0])
            values: dict[tuple[str, str, str], tuple[_Watched, float]] = {}
            for point in readings:  # one value per indicator and time (a line's meters)
                for watched, value in self._values(point):
                    values[(watched.ent, watched.line, watched.indicator.id)] = (watched, value)
            for watched, value in values.values():
                anomaly = self._judge(watched, value, at, detected_at)
                if anomaly is not None:
                    out.append(anomaly)
        return out

    def _values(self, point: Point) -> list[tuple[_Watched, float]]:
        """The indicators `point` gives a value of, with the value."""
        index = self._watch()
        out: list[tuple[_Watched, float]] = []
        if point.measurement == "power":
            ent_id, meter = point.tag("enterprise") or "", point.tag("meter") or ""
            for watched in index.by_meter.get((ent_id, meter), []):
                value = self._meter_value(watched, point)
                if value is not None:
                    out.append((watched, value))
            return out
        mn = point.tag("mn") or ""
        if mn not in index.mns:
            return out
        device = index.registry.device(mn)
        version = device.outlet.version if device is not None else None
        if point.measurement == "emission":
            code, interval = point.tag("pollutant") or "", point.tag("interval") or ""
            raw = point.field("rtd" if interval == "rtd" else "avg")
        else:
            code, interval, raw = point.tag("code") or "", "rtd", point.field("value")
        flag = point.field("flag")
        if not isinstance(raw, float) or flag not in (None, "N"):
            return out
        for watched in index.by_device.get((mn, canonical(code, version), interval), []):
            out.append((watched, raw))
        return out

    def _meter_value(self, watched: _Watched, point: Point) -> float | None:
        ind = watched.indicator
        if ind.source == "load":
            p_kw = point.field("p_kw")
            if not isinstance(p_kw, float) or ind.rated_kw is None:
                return None
            return round(p_kw / ind.rated_kw * 100, 3)
        ent = self.registry().enterprise(watched.ent)
        line = next((ln for ln in ent.lines if ln.id == watched.line), None) if ent else None
        if ent is None or line is None:
            return None
        return float(sum(self.meters.running(ent.id, m) for m in _production_meters(ent, line)))

    def _judge(
        self, watched: _Watched, value: float, at: datetime, detected_at: datetime
    ) -> Anomaly | None:
        ent = self.registry().enterprise(watched.ent)
        if ent is None:
            return None
        ind = watched.indicator
        name = f"{watched.line}/{ind.id}"
        subject = f"line:{ent.id}/{name}"
        control = self.regime.in_force(ent.id, ent.region, at)
        bound = governing(limits_in_force(ent, name, control), value)
        duty: Obligation | None = None
        if bound is not None and bound.beyond(value):
            duty = obligation(
                self.regime, ent, watched.line, at, indicator_sources(name), control=control
            )
        holds = bound is not None and duty is not None and at >= duty.grace_until
        record: dict[str, object] = {"at": at.isoformat(), "value": value}
        if holds:
            kept = self.values.setdefault(subject, [])
            kept.append(record)
            if len(kept) > _KEEP_VALUES:
                del kept[1]  # the first stays
        else:
            self.values.pop(subject, None)

        def opened(since: datetime) -> Anomaly:
            assert bound is not None and duty is not None
            values = list(self.values.get(subject, [record]))
            return Anomaly(
                type="plan_indicator_exceeded",
                severity="alarm",
                enterprise=ent.id,
                subject=subject,
                started_at=since,
                summary=_summary(ind, watched.line, bound, value, since),
                evidence={
                    "line": watched.line,
                    "indicator": ind.id,
                    "indicator_name": ind.name,
                    "indicator_source": _source(ent, watched, ind),
                    "value": value,
                    "values": values,
                    "peak": _peak(bound, values),
                    "max_allowed": bound.max,
                    "min_allowed": bound.min,
                    "plan_key": bound.key,
                    "responsible": bound.plan.responsible,
                    "contact": bound.plan.contact,
                    "obligation": duty.evidence(),
                    "persist_s": ind.persist_s,
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(anomaly: Anomaly) -> Anomaly:
            released = bound is None
            return anomaly.closed(
                at,
                summary=anomaly.summary
                + (" No plan in force limits it" if released else " Back within the limit")
                + f" at {at.astimezone(_BEIJING):%Y-%m-%d %H:%M} (Beijing).",
                closing_value=value,
                closed_as="released" if released else "within",
            )

        return self._hold(subject, holds, at, ind.persist_s, opened, closed)


def _source(ent: Enterprise, watched: _Watched, ind: Indicator) -> dict[str, Any]:
    """Where the indicator's value comes from, as the evidence names it."""
    if ind.source == "running":
        meters = [m for m in ent.meters if m.role == "production" and m.line == watched.line]
        return {"from": "running", "meters": [m.id for m in meters]}
    if ind.source == "load":
        return {"from": "load", "meter": ind.meter, "rated_kw": ind.rated_kw}
    return {"from": "device", "mn": ind.mn, "code": ind.code, "interval": ind.interval}


def _peak(bound: Bound, values: list[dict[str, object]]) -> object:
    numbers = [v["value"] for v in values if isinstance(v["value"], float)]
    if not numbers:
        return None
    return max(numbers) if bound.max is not None and numbers[0] > bound.max else min(numbers)


def _summary(ind: Indicator, line: str, bound: Bound, value: float, since: datetime) -> str:
    limit = " and ".join(
        text
        for text in (
            f"at most {bound.max:g}" if bound.max is not None else "",
            f"at least {bound.min:g}" if bound.min is not None else "",
        )
        if text
    )
    return (
        f"Indicator {ind.name or ind.id} of line {line} at {value:g}, beyond the {bound.key} "
        f"plan's limit ({limit}) since {since.astimezone(_BEIJING):%Y-%m-%d %H:%M} (Beijing)."
    )
