"""`suspicious_data`: values an inspector would doubt, while the outlet's production runs.

Patterns (each per outlet and pollutant, judged on valid-looking data in event time):
- `constant`: the same value for [6 h] (outlet `constant_after_s`);
- `zeros`: 0 for [15 min] (outlet `zeros_after_s`);
- `flag_f`: flag F ("stopped") for [15 min] (outlet `zeros_after_s`).

"Production runs" means one of the outlet's `lines` has a production meter reading `running`;
outlets without `lines` are not judged. An anomaly closes at the first reading that breaks the
pattern, or when production stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Device, Enterprise, Outlet, Registry

from .base import BaseRule, MeterStates, event_time

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
    ) -> None:
        super().__init__()
        self.registry = registry
        self.constant_s = constant_s
        self.persist_s = persist_s
        self.meters = MeterStates()
        self.runs: dict[str, tuple[datetime, object]] = {}  # subject -> (since, value)

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        self.meters.update(points)
        out = []
        registry = self.registry()
        devices: dict[str, Device | None] = {}  # per MN, once per batch
        for point in sorted(points, key=lambda p: p.event_time_ns):
            if point.measurement != "emission" or point.tag("pollutant") in SKIPPED:
                continue
            mn = point.tag("mn") or ""
            if mn not in devices:
                found = registry.device(mn)
                devices[mn] = found if found is not None and found.outlet.lines else None
            device = devices[mn]
            if device is None:
                continue
            ent = registry.enterprise(device.enterprise)
            if ent is None:
                continue
            value = point.field("rtd") if point.tag("interval") == "rtd" else point.field("avg")
            flag = point.field("flag")
            at = event_time(point)
            producing = self._producing(ent, device.outlet)
            if producing is None:
                continue  # no production reading yet (after a restart): nothing to judge by
            code = point.tag("pollutant") or ""
            interval = point.tag("interval") or ""
            constant_s = device.outlet.constant_after_s or self.constant_s
            persist_s = device.outlet.zeros_after_s or self.persist_s
            checks = (
                ("constant", value if isinstance(value, float) else None, constant_s),
                ("zeros", 0.0 if value == 0.0 else None, persist_s),
                ("flag_f", "F" if flag == "F" else None, persist_s),
            )
            for pattern, key, needed_s in checks:
                anomaly = self._track(
                    ent,
                    device.outlet,
                    code,
                    interval,
                    pattern,
                    key,
                    needed_s,
                    producing,
                    at,
                    detected_at,
                )
                if anomaly is not None:
                    out.append(anomaly)
        return out

    def _producing(self, ent: Enterprise, outlet: Outlet) -> bool | None:
        """Whether the outlet's lines produce; None while no production meter has reported."""
        meters = [m.id for m in ent.meters if m.role == "production" and m.line in outlet.lines]
        if not any(self.meters.evidence(ent.id, m) is not None for m in meters):
            return None
        return any(self.meters.running(ent.id, m) for m in meters)

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
