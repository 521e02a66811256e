"""`values_copied` (数据雷同): one series' hourly values written into another. Two series are
compared hour by hour on their valid (flag N) hourly means: two pollutants of one outlet, or one
pollutant (codes in their 2017 form) at two outlets of one enterprise. Comparing across
enterprises is left out: it would cost a comparison per pair of a province's stacks.

A pair is copied when its values were equal (as sent, non-zero) in at least `copied_hours` [6]
of the last `copied_window` [12] hours both reported (the first outlet's thresholds, by id).
Zeros are `suspicious_data`'s, and so is one series repeating itself. The anomaly (subject
`copied:{enterprise}/{outlet}/{code}={outlet}/{code}`, the pair in sorted order) starts at the
first equal hour of the window that crossed the threshold and lists the equal hours; it closes
at the end of the last equal hour once the window holds fewer. Each hour is compared once, when
the second series' record of it arrives, in any order within the `KEEP_HOURS` [48] remembered.
After a restart an open anomaly's window starts again from the equal hours its evidence lists.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point, from_ns, to_ns
from gateway.registry import Outlet, Registry
from gateway.vocabulary import O2, canonical

from .base import BaseRule

HOUR_NS = 3_600_000_000_000
KEEP_HOURS = 48  # hours of values remembered per enterprise
MAX_LISTED = 24  # equal hours listed in the evidence

Key = tuple[str, str]  # (outlet id, 2017 code)


@dataclass(slots=True)
class _Pair:
    """The shared hours of two series, newest last (at most a window): (hour ns, equal)."""

    shared: deque[tuple[int, bool]] = field(default_factory=deque)


class ValuesCopied(BaseRule):
    name = "values_copied"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry]) -> None:
        super().__init__()
        self.registry = registry
        # enterprise -> hour ns -> series -> value (the latest KEEP_HOURS hours)
        self.hours: dict[str, dict[int, dict[Key, float]]] = {}
        self.pairs: dict[str, _Pair] = {}  # subject -> its shared hours

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out: list[Anomaly] = []
        registry = self.registry()
        hourly = [p for p in points if p.measurement == "emission" and p.tag("interval") == "hour"]
        for point in sorted(hourly, key=lambda p: p.event_time_ns):
            device = registry.device(point.tag("mn") or "")
            value = point.field("avg")
            if device is None or point.field("flag") != "N" or not isinstance(value, float):
                continue
            code = canonical(point.tag("pollutant") or "", device.outlet.version)
            if code == O2:  # air's 20.9 % is no copy
                continue
            found = (device.enterprise, device.outlet, code)
            out += self._compare(registry, found, point.event_time_ns, value, detected_at)
        return out

    def _compare(
        self,
        registry: Registry,
        series: tuple[str, Outlet, str],
        hour_ns: int,
        value: float,
        detected_at: datetime,
    ) -> list[Anomaly]:
        enterprise, outlet, code = series
        book = self.hours.setdefault(enterprise, {})
        if hour_ns not in book and len(book) >= KEEP_HOURS and hour_ns < min(book):
            return []  # older than every hour remembered
        values = book.setdefault(hour_ns, {})
        while len(book) > KEEP_HOURS:
            del book[min(book)]
        key = (outlet.id, code)
        if key in values:
            return []  # this hour of this series was compared when it first came
        values[key] = value
        out: list[Anomaly] = []
        for other, seen in list(values.items()):
            if other == key or (other[0] != outlet.id and other[1] != code):
                continue  # neither the same outlet nor the same pollutant
            first, second = sorted((key, other))
            equal = value == seen and value != 0.0
            out += self._step(registry, enterprise, (first, second), hour_ns, equal, detected_at)
        return out

    def _step(
        self,
        registry: Registry,
        enterprise: str,
        keys: tuple[Key, Key],
        hour_ns: int,
        equal: bool,
        detected_at: datetime,
    ) -> list[Anomaly]:
        first, second = keys
        ent = registry.enterprise(enterprise)
        outlet = next((o for o in ent.outlets if o.id == first[0]), None) if ent else None
        if outlet is None:
            return []
        subject = f"copied:{enterprise}/{first[0]}/{first[1]}={second[0]}/{second[1]}"
        pair = self.pairs.setdefault(subject, _Pair())
        pair.shared.append((hour_ns, equal))
        pair.shared = deque(sorted(pair.shared)[-outlet.copied_window :])
        equal_hours = [h for h, same in pair.shared if same]
        current = self.open.get(subject)
        holds = len(equal_hours) >= outlet.copied_hours
        if current is None and not holds:
            return []
        if current is None:
            return [self._opened(subject, enterprise, keys, equal_hours, outlet, detected_at)]
        if holds:
            if not equal:
                return []
            listed = sorted({*map(str, current.evidence["equal_hours"]), _iso(hour_ns)})
            count = int(current.evidence["equal_count"]) + 1
            anomaly = current.updated(
                from_ns(hour_ns), equal_hours=listed[-MAX_LISTED:], equal_count=count
            )
            self.open[subject] = anomaly
            return [anomaly]
        del self.open[subject]
        last = datetime.fromisoformat(str(current.evidence["equal_hours"][-1]))
        return [current.closed(last + timedelta(hours=1), closed_as="differ")]

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        super().restore(open_anomalies)
        for anomaly in open_anomalies:
            self.pairs[anomaly.subject] = _restored(anomaly)

    def _opened(
        self,
        subject: str,
        enterprise: str,
        keys: tuple[Key, Key],
        equal_hours: list[int],
        outlet: Outlet,
        detected_at: datetime,
    ) -> Anomaly:
        first, second = keys
        hours = [_iso(h) for h in equal_hours]
        anomaly = Anomaly(
            type="values_copied",
            severity="warning",
            enterprise=enterprise,
            subject=subject,
            started_at=from_ns(equal_hours[0]),
            summary=f"{first[0]} {first[1]} and {second[0]} {second[1]} equal in "
            f"{len(hours)} hours since {hours[0]}.",
            evidence={
                "outlet": first[0],
                "pollutant": first[1],
                "other_outlet": second[0],
                "other_pollutant": second[1],
                "equal_hours": hours[-MAX_LISTED:],
                "equal_count": len(hours),
                "copied_hours": outlet.copied_hours,
                "window_hours": outlet.copied_window,
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=from_ns(equal_hours[-1]),
        )
        self.open[subject] = anomaly
        return anomaly


def _restored(anomaly: Anomaly) -> _Pair:
    """A pair's window after a restart: the equal hours the anomaly lists."""
    hours = (to_ns(datetime.fromisoformat(str(h))) for h in anomaly.evidence["equal_hours"])
    return _Pair(deque((h, True) for h in sorted(hours)))


def _iso(hour_ns: int) -> str:
    return from_ns(hour_ns).isoformat()
