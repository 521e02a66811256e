"""`curtailment_exceeded`: under a curtailment of X % (an explicit order, or the alert level's
plan), a line's production energy over the window [4 h] exceeds (1 - X) x baseline x [1.1].

Production energy is the interval energy (`energy_kwh`) of the line's production meters, summed
by clock hour; a reading's interval ends at its time, so a reading at 16:00:00 counts in the
15:00 hour. The window is the last complete clock hours (hour H is complete once a reading at
or after H + 1 h arrives), so a partly-filled hour never makes the energy look low. The baseline
is the mean energy of the same clock hours on the recent days [7] before the curtailment began
that have data for them; a curtailment that passes from source to source without a break (an
orange plan's cut, then a red plan's) began when the first did, and the cut in force is that
of the current source. The window must lie wholly inside the curtailment. No baseline day, no
judgement (the evidence would not hold). The anomaly closes at the first reading whose window is
back within the allowance or no longer curtailed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import Regime
from gateway.registry import Enterprise, Line, Registry

from .base import BaseRule, by_time, event_time
from .obligation import Obligation, curtailment_sources, obligation

HOUR = timedelta(hours=1)
INTERVAL_END = timedelta(microseconds=1)  # a reading on the hour closes the previous hour
KEEP = timedelta(days=62)


class CurtailmentExceeded(BaseRule):
    name = "curtailment_exceeded"
    measurements = frozenset({"power"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self.energy: dict[tuple[str, str], dict[datetime, float]] = {}  # (ent, line) -> hour -> kWh

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out: list[Anomaly] = []
        for readings in by_time(points):  # a meter's array: each reading at its own time
            out += self._readings(readings, detected_at)
        return out

    def _readings(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        touched: dict[tuple[str, str], datetime] = {}
        registry = self.registry()
        for point in points:
            energy = point.field("energy_kwh")
            ent_id, meter_id = point.tag("enterprise") or "", point.tag("meter") or ""
            meter = registry.meter(ent_id, meter_id)
            if meter is None or meter.role != "production" or not meter.line:
                continue
            at = event_time(point)
            if isinstance(energy, float):
                hour = _hour(at - INTERVAL_END)
                buckets = self.energy.setdefault((ent_id, meter.line), {})
                buckets[hour] = buckets.get(hour, 0.0) + energy
                for old in [h for h in buckets if h < hour - KEEP]:
                    del buckets[old]
            key = (ent_id, meter.line)
            touched[key] = max(at, touched.get(key, at))
        out = []
        for (ent_id, line_id), at in touched.items():
            ent = registry.enterprise(ent_id)
            line = next((ln for ln in ent.lines if ln.id == line_id), None) if ent else None
            if ent is not None and line is not None:
                anomaly = self._judge(ent, line, at, detected_at)
                if anomaly is not None:
                    out.append(anomaly)
        return out

    def _curtailment(
        self, ent: Enterprise, line: Line, at: datetime
    ) -> tuple[float, datetime, str, Obligation] | None:
        """(percent, since, source, obligation) of the curtailment covering the line at `at`:
        the percent of the source in force now, since the start of the continuous curtailment
        (an orange plan's cut followed by a red one's is one curtailment)."""
        found = obligation(self.regime, ent, line.id, at, curtailment_sources, grace_s=0)
        percent = found.current.percent if found is not None else None
        if found is None or percent is None:
            return None
        current = found.current
        source = f"order {current.ref}" if current.kind == "order" else current.label
        return percent, found.since, source, found

    def _percent_at(self, ent: Enterprise, line: Line, at: datetime, default: float) -> float:
        control = self.regime.in_force(ent.id, ent.region, at)
        sources = curtailment_sources(ent, line.id, control)
        percent = sources[0].percent if sources else None
        return default if percent is None else percent

    def _window(
        self, buckets: dict[datetime, float], end_hour: datetime, hours: int
    ) -> float | None:
        wanted = [end_hour - HOUR * k for k in range(hours)]
        if not all(h in buckets for h in wanted):
            return None
        return sum(buckets[h] for h in wanted)

    def _judge(
        self, ent: Enterprise, line: Line, at: datetime, detected_at: datetime
    ) -> Anomaly | None:
        subject = f"line:{ent.id}/{line.id}"
        current = self.open.get(subject)
        curtail = self._curtailment(ent, line, at)
        buckets = self.energy.get((ent.id, line.id), {})
        hours = max(1, round(ent.curtail_window_s / 3600))
        end_hour = _hour(at) - HOUR  # the last complete hour
        verdict = None
        if curtail is not None and end_hour - HOUR * (hours - 1) >= curtail[1]:
            window = [end_hour - HOUR * k for k in range(hours)]
            energy = self._window(buckets, end_hour, hours)
            days = [
                day
                for day in range(1, ent.baseline_days + 1)
                if end_hour - timedelta(days=day) < curtail[1]
                and self._window(buckets, end_hour - timedelta(days=day), hours) is not None
            ]
            if energy is not None and days:
                # each hour with the cut in force then (orange 30 %, then red 50 %...)
                usual = {
                    h: sum(buckets[h - timedelta(days=d)] for d in days) / len(days) for h in window
                }
                cuts = {h: self._percent_at(ent, line, h + HOUR / 2, curtail[0]) for h in window}
                baseline = sum(usual.values())
                allowed = (
                    sum((1 - cuts[h] / 100) * usual[h] for h in window) * ent.curtail_tolerance
                )
                verdict = (energy > allowed, energy, baseline, allowed, len(days))
        if verdict is None or not verdict[0]:
            if current is None or (verdict is None and curtail is not None):
                return None  # still curtailed but not judgeable: keep what is open
            del self.open[subject]
            return current.closed(
                at,
                summary=current.summary + f" Within the allowance (or no "
                f"longer curtailed) at {at:%Y-%m-%d %H:%M} UTC.",
            )
        if current is not None:
            return None
        assert curtail is not None
        _, energy, baseline, allowed, n_days = verdict
        anomaly = Anomaly(
            type="curtailment_exceeded",
            severity="alarm",
            enterprise=ent.id,
            subject=subject,
            started_at=end_hour - HOUR * (hours - 1),
            summary=f"Line {line.id} used {energy:.0f} kWh in {hours} h under a {curtail[0]:g} % "
            f"curtailment ({curtail[2]}); allowed {allowed:.0f} kWh "
            f"(baseline {baseline:.0f} kWh from {n_days} day(s)).",
            evidence={
                "line": line.id,
                "percent": curtail[0],
                "source": curtail[2],
                "ref": curtail[3].current.ref,
                "curtailed_since": curtail[1].isoformat(),
                "sources": [src.evidence() for src in curtail[3].sources],
                "window_hours": hours,
                "energy_kwh": round(energy, 3),
                "baseline_kwh": round(baseline, 3),
                "allowed_kwh": round(allowed, 3),
                "baseline_days": n_days,
                "tolerance": ent.curtail_tolerance,
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=at,
        )
        self.open[subject] = anomaly
        return anomaly


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)
