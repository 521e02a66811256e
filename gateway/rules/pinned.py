"""`values_pinned` (数据贴线): a pollutant's valid hourly values held just under its limit with
far less variation than a working process shows. Judged per outlet and pollutant with a limit
in the registry (subject `outlet:{enterprise}/{outlet}/{code}`, code in its 2017 form), on
hourly records flagged N: the value is the device's `ZsAvg` when sent, else its `Avg`.

It holds for a window of the last `pinned_hours` [12] consecutive hours when every value lies
within [`pinned_band` [0.8] x limit, limit] and their coefficient of variation (population
standard deviation / mean) is under `pinned_cv` [0.01]. Values all equal are left to
`suspicious_data` (its `constant` pattern). The anomaly starts at the first hour of the first
window that holds; a later hour whose window holds extends it (one new version per hour); an
hour that breaks it (out of the band, over the limit, or a window that varies normally), an
invalid hour or a missing one closes it at the end of its last pinned hour. Hours at or before
the latest judged one (late or back-filled) are not judged. Replaying the same hours gives the
same anomaly (its id comes from subject and start). After a restart an open anomaly carries on
from its last pinned hour: until its window is full again, a following hour keeps it open while
it lies in the band (the variation is judged again once the window is full).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point, from_ns, to_ns
from gateway.registry import Outlet, PollutantLimit, Registry

from .base import BaseRule

HOUR_NS = 3_600_000_000_000


@dataclass(slots=True)
class _Series:
    """The consecutive valid hours of one pollutant, newest last (at most a window)."""

    hours: deque[tuple[int, float]] = field(default_factory=deque)
    last_ns: int | None = None  # the latest hour judged


class ValuesPinned(BaseRule):
    name = "values_pinned"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry]) -> None:
        super().__init__()
        self.registry = registry
        self.series: dict[str, _Series] = {}  # subject -> its recent hours
        self.restored: set[str] = set()  # open anomalies whose window is refilling

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out: list[Anomaly] = []
        registry = self.registry()
        hourly = [p for p in points if p.measurement == "emission" and p.tag("interval") == "hour"]
        for point in sorted(hourly, key=lambda p: p.event_time_ns):
            device = registry.device(point.tag("mn") or "")
            if device is None:
                continue
            sent = point.tag("pollutant") or ""
            found = device.outlet.limit_for(sent, from_ns(point.event_time_ns))
            if found is None:
                continue
            code, limit = found
            zs = point.field("zs_avg")
            value = zs if isinstance(zs, float) else point.field("avg")
            if not isinstance(value, float):
                continue
            subject = f"outlet:{device.enterprise}/{device.outlet.id}/{code}"
            out += self._judge(
                subject,
                device.enterprise,
                device.outlet,
                (code, sent, limit, "ZsAvg" if isinstance(zs, float) else "Avg"),
                point.event_time_ns,
                value if point.field("flag") == "N" else None,
                detected_at,
            )
        return out

    def _judge(
        self,
        subject: str,
        enterprise: str,
        outlet: Outlet,
        what: tuple[str, str, PollutantLimit, str],
        hour_ns: int,
        value: float | None,  # None: an invalid hour
        detected_at: datetime,
    ) -> list[Anomaly]:
        series = self.series.setdefault(subject, _Series())
        if series.last_ns is not None and hour_ns <= series.last_ns:
            return []  # late or back-filled: the present was judged without it
        out: list[Anomaly] = []
        current = self.open.get(subject)
        follows = series.last_ns is not None and hour_ns == series.last_ns + HOUR_NS
        series.last_ns = hour_ns
        if not follows or value is None:
            series.hours.clear()
            if current is not None:
                out.append(self._close(subject, current))
            if value is None:
                return out
            current = None
        series.hours.append((hour_ns, value))
        while len(series.hours) > outlet.pinned_hours:
            series.hours.popleft()
        if subject in self.restored and len(series.hours) >= outlet.pinned_hours:
            self.restored.discard(subject)
        if subject in self.restored:
            limit = what[2].limit
            held = all(outlet.pinned_band * limit <= v <= limit for _, v in series.hours)
        else:
            held = self._holds(series, outlet, what[2].limit)
        if current is not None and not held:
            return [*out, self._close(subject, current)]
        if not held:
            return out
        values = [v for _, v in series.hours]
        if current is None:
            anomaly = self._opened(subject, enterprise, outlet, what, series, detected_at)
        else:
            ev = current.evidence
            anomaly = current.updated(
                from_ns(hour_ns),
                held_hours=int(ev["held_hours"]) + 1,
                last_hour=from_ns(hour_ns).isoformat(),
                min_value=min(float(ev["min_value"]), min(values)),
                max_value=max(float(ev["max_value"]), max(values)),
                cv=_cv(values),
            )
        self.open[subject] = anomaly
        return [*out, anomaly]

    @staticmethod
    def _holds(series: _Series, outlet: Outlet, limit: float) -> bool:
        values = [v for _, v in series.hours]
        if len(values) < outlet.pinned_hours or len(set(values)) == 1:
            return False
        if any(not outlet.pinned_band * limit <= v <= limit for v in values):
            return False
        return _cv(values) < outlet.pinned_cv

    def _opened(
        self,
        subject: str,
        enterprise: str,
        outlet: Outlet,
        what: tuple[str, str, PollutantLimit, str],
        series: _Series,
        detected_at: datetime,
    ) -> Anomaly:
        code, sent, limit, basis = what
        first, last = from_ns(series.hours[0][0]), from_ns(series.hours[-1][0])
        values = [v for _, v in series.hours]
        return Anomaly(
            type="values_pinned",
            severity="warning",
            enterprise=enterprise,
            subject=subject,
            started_at=first,
            summary=f"{code} at {outlet.id} held within {outlet.pinned_band:g} x its limit "
            f"{limit.limit:g} for {len(values)} h since {first.isoformat()}.",
            evidence={
                "outlet": outlet.id,
                "mn": outlet.mn,
                "pollutant": code,
                "code_sent": sent,
                "interval": "hour",
                "basis": basis,
                "limit": limit.limit,
                "unit": limit.unit,
                "band": outlet.pinned_band,
                "cv_below": outlet.pinned_cv,
                "window_hours": outlet.pinned_hours,
                "held_hours": len(values),
                "last_hour": last.isoformat(),
                "min_value": min(values),
                "max_value": max(values),
                "cv": _cv(values),  # of the latest window
                "window_values": [round(v, 4) for v in values],  # the first window, oldest first
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=last,
        )

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        super().restore(open_anomalies)
        for anomaly in open_anomalies:
            last = datetime.fromisoformat(str(anomaly.evidence["last_hour"]))
            self.series[anomaly.subject] = _Series(last_ns=to_ns(last))
            self.restored.add(anomaly.subject)

    def _close(self, subject: str, anomaly: Anomaly) -> Anomaly:
        del self.open[subject]
        self.restored.discard(subject)
        last = datetime.fromisoformat(str(anomaly.evidence["last_hour"]))
        return anomaly.closed(last + timedelta(hours=1), closed_as="varies")


def _cv(values: Sequence[float]) -> float:
    mean = statistics.fmean(values)
    return round(statistics.pstdev(values) / mean, 6) if mean else 0.0
