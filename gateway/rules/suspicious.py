"""`suspicious_data`: values an inspector would doubt, while the outlet's production runs.

Patterns (each per outlet and pollutant, judged on valid-looking data in event time):
- `constant`: the same value for [6 h] (outlet `constant_after_s`);
- `zeros`: 0 for [15 min] (outlet `zeros_after_s`);
- `flag_f`: flag F ("stopped") for [15 min] (outlet `zeros_after_s`).

"Production runs" means one of the outlet's `lines` has a production meter reading `running`;
outlets without `lines` are not judged. An anomaly closes at the first reading that breaks the
pattern, or when production stops.

Emission records and meter readings come by different feeds with different lags, so a record is
judged against production at its own event time: it waits (bounded, [20000] records; past that
the oldest are judged with the meters' latest verdicts) until the production meters have
reported up to its time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Enterprise, Outlet, Registry

from .base import UNKNOWN, WAIT, BaseRule, MeterStates, Unknown, event_time

METER_HISTORY = 2000  # verdicts kept per meter: about a week of 5-minute readings
SKIPPED = frozenset({"a19001"})  # O2 can legitimately sit still (air at 20.9 %)


class SuspiciousData(BaseRule):
    name = "suspicious_data"
    measurements = frozenset({"emission", "power"})

    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        constant_s: float = 6 * 3600.0,
        persist_s: float = 900.0,
        max_waiting: int = 20000,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.constant_s = constant_s
        self.persist_s = persist_s
        self.meters = MeterStates(keep=METER_HISTORY)
        self.runs: dict[str, tuple[datetime, object]] = {}  # subject -> (since, value)
        self.pending: dict[str, deque[tuple[str, Point]]] = {}  # MN -> (enterprise, record)
        self.waiting = 0
        self.max_waiting = max_waiting

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Each record is judged against production at its own time: a record the production
        meters have not reported up to yet waits (with the later ones of its device) until
        they have, so the order in which the two feeds arrive does not matter."""
        touched = self.meters.update(points)
        out: list[Anomaly] = []
        registry = self.registry()
        if touched:
            for mn in [m for m, queue in self.pending.items() if queue[0][0] in touched]:
                out += self._release(registry, mn, detected_at)
        for point in sorted(points, key=lambda p: p.event_time_ns):
            if point.measurement != "emission" or point.tag("pollutant") in SKIPPED:
                continue
            mn = point.tag("mn") or ""
            device = registry.device(mn)
            ent = registry.enterprise(device.enterprise) if device is not None else None
            if device is None or ent is None or not _production_meters(ent, device.outlet):
                continue
            self.pending.setdefault(mn, deque()).append((ent.id, point))
            self.waiting += 1
            out += self._release(registry, mn, detected_at)
        while self.waiting > self.max_waiting:  # meters silent for long: judge by what is known
            mn = min(self.pending, key=lambda m: self.pending[m][0][1].event_time_ns)
            out += self._release(registry, mn, detected_at, force=True)
        return out

    def _release(
        self, registry: Registry, mn: str, detected_at: datetime, *, force: bool = False
    ) -> list[Anomaly]:
        """Judge the device's waiting records, oldest first, while production at their time is
        known; with `force`, the first one by the meters' latest verdicts. A record whose time
        is older than every verdict kept is dropped unjudged."""
        out: list[Anomaly] = []
        queue = self.pending[mn]
        device = registry.device(mn)
        ent = registry.enterprise(device.enterprise) if device is not None else None
        while queue:
            point = queue[0][1]
            producing: bool | Unknown = UNKNOWN
            if device is not None and ent is not None:
                producing = self._producing(ent, device.outlet, event_time(point), force)
                if producing is WAIT:
                    break
            queue.popleft()
            self.waiting -= 1
            force = False
            if isinstance(producing, bool) and device is not None and ent is not None:
                out += self._judge(ent, device.outlet, point, producing, detected_at)
        if not queue:
            del self.pending[mn]
        return out

    def _judge(
        self, ent: Enterprise, outlet: Outlet, point: Point, producing: bool, detected_at: datetime
    ) -> list[Anomaly]:
        value = point.field("rtd") if point.tag("interval") == "rtd" else point.field("avg")
        flag = point.field("flag")
        code = point.tag("pollutant") or ""
        interval = point.tag("interval") or ""
        constant_s = outlet.constant_after_s or self.constant_s
        persist_s = outlet.zeros_after_s or self.persist_s
        checks = (
            ("constant", value if isinstance(value, float) else None, constant_s),
            ("zeros", 0.0 if value == 0.0 else None, persist_s),
            ("flag_f", "F" if flag == "F" else None, persist_s),
        )
        out = []
        for pattern, key, needed_s in checks:
            anomaly = self._track(
                ent,
                outlet,
                code,
                interval,
                pattern,
                key,
                needed_s,
                producing,
                event_time(point),
                detected_at,
            )
            if anomaly is not None:
                out.append(anomaly)
        return out

    def _producing(
        self, ent: Enterprise, outlet: Outlet, at: datetime, latest: bool
    ) -> bool | Unknown:
        """Whether one of the outlet's lines produced at `at` (with `latest`, the meters'
        latest verdicts stand in for those not reported up to `at` yet)."""
        states = [self.meters.running_at(ent.id, m, at) for m in _production_meters(ent, outlet)]
        if any(state is True for state in states):
            return True
        if WAIT in states:
            if latest:
                return any(self.meters.running(ent.id, m) for m in _production_meters(ent, outlet))
            return WAIT
        return UNKNOWN if UNKNOWN in states else False

    def _track(
        self,
        ent: Enterprise,
        outlet: Outlet,
        code: str,
        interval: str,
        pattern: str,
        key: object,
        needed_s: float,
        producing: bool,
        at: datetime,
        detected_at: datetime,
    ) -> Anomaly | None:
        subject = f"outlet:{ent.id}/{outlet.id}/{code}/{interval}:{pattern}"
        run = self.runs.get(subject)
        current = self.open.get(subject)
        if key is None or not producing or (run is not None and run[1] != key):
            if key is not None and producing:
                self.runs[subject] = (at, key)  # a new value starts a new run
            else:
                self.runs.pop(subject, None)
            if current is None:
                return None
            del self.open[subject]
            return current.closed(at, summary=current.summary + f" Ended {at:%Y-%m-%d %H:%M} UTC.")
        if run is None:
            self.runs[subject] = (at, key)
            return None
        since = run[0]
        if current is not None or (at - since).total_seconds() < needed_s:
            return None
        what = {"constant": f"the same value {key}", "zeros": "0", "flag_f": "flag F (stopped)"}[
            pattern
        ]
        anomaly = Anomaly(
            type="suspicious_data",
            severity="warning",
            enterprise=ent.id,
            subject=subject,
            started_at=since,
            summary=f"{code} ({interval}) at outlet {outlet.id} has reported {what} since "
            f"{since:%Y-%m-%d %H:%M} UTC while production runs.",
            evidence={
                "pattern": pattern,
                "outlet": outlet.id,
                "mn": outlet.mn,
                "pollutant": code,
                "interval": interval,
                "value": key,
                "since": since.isoformat(),
                "threshold_s": needed_s,
                "lines": outlet.lines,
                "production": [  # each meter's verdict at the record's time, and its latest
                    {
                        "meter": m,
                        "running": state if isinstance(state, bool) else None,
                        "latest": self.meters.evidence(ent.id, m),
                    }
                    for m in _production_meters(ent, outlet)
                    for state in [self.meters.running_at(ent.id, m, at)]
                ],
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=at,
        )
        self.open[subject] = anomaly
        return anomaly

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        super().restore(open_anomalies)
        for anomaly in open_anomalies:
            since = datetime.fromisoformat(anomaly.evidence["since"])
            self.runs[anomaly.subject] = (since, anomaly.evidence["value"])


def _production_meters(ent: Enterprise, outlet: Outlet) -> list[str]:
    return [m.id for m in ent.meters if m.role == "production" and m.line in outlet.lines]
