"""`flag_abuse`: an outlet's hourly records flagged as maintenance, calibration, fault, over
range or set by hand (M, C, D, T, S) too often, or on the hours that would exceed. Per outlet
(subject `outlet:{enterprise}/{outlet}:flags`), over the hourly records of the last
`flag_window_hours` [24] hours (event time), an hour counting as flagged when any of its values
carries one of those flags; hours flagged only F (stopped) or B (communication) beside N, and
hours with no record, are left out of the share (one F value does not hide an hour's M, C, D).

It holds when the flagged hours are at least `flag_share` [0.3] of the hours with a record (once
those are at least half the window: a device just heard from is not judged on its first hours),
or when at least `flag_over_limit_hours` [2] flagged hours carry a value over its pollutant's
limit (`ZsAvg` when sent, else `Avg`): an exceedance flagged away as a fault. Genuine routine
(a daily calibration hour, a maintenance morning a week) stays under both. It starts at the
window's first flagged hour, lists the flagged hours with their flags, and closes at the end of
its last flagged hour once the window no longer holds. Hours older than the window are not
judged; a replay gives the same anomaly. After a restart an open anomaly stays open, unchanged,
until half a window of hours has come again and is judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.anomalies.model import Anomaly
from gateway.model import Point, from_ns
from gateway.registry import Outlet, Registry

from .base import BaseRule

HOUR_NS = 3_600_000_000_000
ABUSED = frozenset({"M", "C", "D", "T", "S"})
LEFT_OUT = frozenset({"F", "B"})  # the source stopped, the link failed: no share either way
MAX_LISTED = 48


@dataclass(slots=True)
class _Hour:
    flags: set[str] = field(default_factory=set)  # the abused flags of its values
    over: list[str] = field(default_factory=list)  # flagged values over their limit: codes
    left_out: bool = False


class FlagAbuse(BaseRule):
    name = "flag_abuse"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry]) -> None:
        super().__init__()
        self.registry = registry
        self.hours: dict[str, dict[int, _Hour]] = {}  # subject -> hour ns -> its verdict
        self.restored: set[str] = set()  # open anomalies whose window is refilling

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        registry = self.registry()
        touched: dict[str, tuple[str, Outlet, int]] = {}
        hourly = [p for p in points if p.measurement == "emission" and p.tag("interval") == "hour"]
        for point in sorted(hourly, key=lambda p: p.event_time_ns):
            device = registry.device(point.tag("mn") or "")
            if device is None:
                continue
            outlet = device.outlet
            subject = f"outlet:{device.enterprise}/{outlet.id}:flags"
            book = self.hours.setdefault(subject, {})
            window_ns = outlet.flag_window_hours * HOUR_NS
            latest = max(book, default=point.event_time_ns)
            if point.event_time_ns <= latest - window_ns:
                continue  # older than the window
            hour = book.setdefault(point.event_time_ns, _Hour())
            flag = point.field("flag")
            if flag in LEFT_OUT:
                hour.left_out = True
            elif isinstance(flag, str) and flag in ABUSED:
                hour.flags.add(flag)
                at = from_ns(point.event_time_ns)
                limit = outlet.limit_for(point.tag("pollutant") or "", at)
                zs = point.field("zs_avg")
                value = zs if isinstance(zs, float) else point.field("avg")
                if limit is not None and isinstance(value, float) and value > limit[1].limit:
                    hour.over.append(limit[0])
            newest = max(book)
            for old in [h for h in book if h <= newest - window_ns]:
                del book[old]
            touched[subject] = (device.enterprise, outlet, newest)
        out: list[Anomaly] = []
        for subject, (enterprise, outlet, newest) in touched.items():
            anomaly = self._judge(subject, enterprise, outlet, newest, detected_at)
            if anomaly is not None:
                out.append(anomaly)
        return out

    def _judge(
        self, subject: str, enterprise: str, outlet: Outlet, newest: int, detected_at: datetime
    ) -> Anomaly | None:
        book = self.hours[subject]
        counted = {h: v for h, v in sorted(book.items()) if v.flags or not v.left_out}
        flagged = {h: v for h, v in counted.items() if v.flags}
        over = [h for h, v in flagged.items() if v.over]
        share = len(flagged) / len(counted) if counted else 0.0
        enough = 2 * len(counted) >= outlet.flag_window_hours
        if subject in self.restored:
            if not enough:
                return None  # its window before the restart is not known: wait for one
            self.restored.discard(subject)
        holds = bool(flagged) and (
            (enough and share >= outlet.flag_share) or len(over) >= outlet.flag_over_limit_hours
        )
        current = self.open.get(subject)
        listed = [
            {
                "hour": from_ns(h).isoformat(),
                "flags": sorted(v.flags),
                "over_limit": sorted(set(v.over)),
            }
            for h, v in list(flagged.items())[-MAX_LISTED:]
        ]
        evidence: dict[str, Any] = {
            "outlet": outlet.id,
            "mn": outlet.mn,
            "flagged_hours": len(flagged),
            "hours_with_record": len(counted),
            "flagged_share": round(share, 4),
            "flagged_over_limit": len(over),
            "flagged_at": listed,
            "flag_share": outlet.flag_share,
            "flag_over_limit_hours": outlet.flag_over_limit_hours,
            "window_hours": outlet.flag_window_hours,
        }
        if current is None:
            if not holds:
                return None
            anomaly = Anomaly(
                type="flag_abuse",
                severity="warning",
                enterprise=enterprise,
                subject=subject,
                started_at=from_ns(next(iter(flagged))),
                summary=f"Outlet {outlet.id}: {len(flagged)} of {len(counted)} hours flagged, "
                f"{len(over)} of them over the limit.",
                evidence=evidence,
                rule=self.name,
                detected_at=detected_at,
                as_of=from_ns(newest),
            )
            self.open[subject] = anomaly
            return anomaly
        if holds:
            if evidence["flagged_at"] == current.evidence["flagged_at"]:
                return None
            summary = f"Outlet {outlet.id}: {len(flagged)} of {len(counted)} hours flagged."
            anomaly = current.updated(from_ns(newest), summary, **evidence)
            self.open[subject] = anomaly
            return anomaly
        del self.open[subject]
        self.restored.discard(subject)
        last = datetime.fromisoformat(str(current.evidence["flagged_at"][-1]["hour"]))
        return current.closed(last + timedelta(hours=1), closed_as="routine")

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        super().restore(open_anomalies)
        self.restored.update(a.subject for a in open_anomalies)
