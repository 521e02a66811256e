"""`bypass_flow`: flow through a bypass flue or a bypass discharge. An outlet the registry marks
`bypass = true` must carry nothing: any flow value (flue gas `a00000`, wastewater `w00000`, or
their 2005 codes `B02` / `B01`) above its `stopped_flow` (default 0, the meter's noise floor
when set) for `bypass_persist_s` [5 min] of event time is an alarm, whatever flag the device
gives it (a bypass that is "in maintenance" still discharges). A value at or below the floor,
with any flag, closes it.

Judged on the finest interval the device sends (real-time, else minute, else hourly values;
`rules/finest.py`), like `emission_during_shutdown`. The anomaly starts at the first flowing
value and closes at the first value at or below the floor; its evidence keeps the peak flow
and the flags seen (a new version when a flag is new or the peak grows by `PEAK_STEP`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Outlet, Registry
from gateway.vocabulary import FLOWS, canonical

from .base import BaseRule, event_time
from .finest import Finest

PERSIST_S = 300.0
MAX_FLAGS = 10  # distinct flags kept in the evidence
PEAK_STEP = 1.1  # a peak this much above the reported one is reported


class BypassFlow(BaseRule):
    name = "bypass_flow"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry]) -> None:
        super().__init__()
        self.registry = registry
        self.latest: dict[str, datetime] = {}  # subject -> latest flow reading judged
        self.finest = Finest()  # by subject

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out = []
        registry = self.registry()
        for point in sorted(points, key=lambda p: p.event_time_ns):
            device = registry.device(point.tag("mn") or "")
            if device is None or not device.outlet.bypass:
                continue
            outlet = device.outlet
            interval = point.tag("interval") or ""
            if canonical(point.tag("pollutant") or "", outlet.version) not in FLOWS:
                continue
            value = point.field("rtd") if interval == "rtd" else point.field("avg")
            if not isinstance(value, float):
                continue
            subject = f"outlet:{device.enterprise}/{outlet.id}"
            at = event_time(point)
            if not self.finest.judged(subject, interval, at):
                continue
            if at < self.latest.get(subject, at):
                continue  # late: the present is judged by the latest reading
            self.latest[subject] = at
            flag = point.field("flag")
            anomaly = self._judge(
                device.enterprise, outlet, subject, value, flag, interval, at, detected_at
            )
            if anomaly is not None:
                out.append(anomaly)
        return out

    def _judge(
        self,
        enterprise: str,
        outlet: Outlet,
        subject: str,
        flow: float,
        flag: object,
        interval: str,
        at: datetime,
        detected_at: datetime,
    ) -> Anomaly | None:
        floor = outlet.stopped_flow or 0.0
        flowing = flow > floor
        flag_text = flag if isinstance(flag, str) else ""
        current = self.open.get(subject)
        if current is not None and flowing:  # keep the peak and the flags seen
            peak = float(current.evidence["peak_flow"])
            flags = list(current.evidence["flags"])
            new_flag = bool(flag_text) and flag_text not in flags and len(flags) < MAX_FLAGS
            if new_flag or flow >= peak * PEAK_STEP:
                flags += [flag_text] if new_flag else []
                current = current.updated(
                    at, peak_flow=max(peak, flow), flags=flags, last_flow=flow
                )
                self.open[subject] = current
                return current

        def opened(since: datetime) -> Anomaly:
            return Anomaly(
                type="bypass_flow",
                severity="alarm",
                enterprise=enterprise,
                subject=subject,
                started_at=since,
                summary=f"Bypass {outlet.id} carries flow {flow:g} above {floor:g} since "
                f"{since.isoformat()}.",
                evidence={
                    "outlet": outlet.id,
                    "mn": outlet.mn,
                    "interval": interval,
                    "flow": flow,
                    "peak_flow": flow,
                    "last_flow": flow,
                    "stopped_flow": floor,
                    "flags": [flag_text] if flag_text else [],
                    "persist_s": outlet.bypass_persist_s,
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(anomaly: Anomaly) -> Anomaly:
            return anomaly.closed(
                at, closing_flow=flow, closing_flag=flag_text, closed_as="stopped"
            )

        return self._hold(subject, flowing, at, outlet.bypass_persist_s, opened, closed)
