"""`emission_during_shutdown`: a shutdown covers every line an outlet serves (an explicit order,
or the alert level's plan), its ramp-down grace has passed, and the outlet still shows flow
(`a00000` flue gas, `w00000` wastewater) above its `stopped_flow` with a valid flag (N), for
the enterprise's persistence time [15 min], in event time.

Only outlets with `stopped_flow` and `lines` in the registry are judged. The anomaly starts at
the first flowing value after the grace and closes at the first value at or below the stopped
level, or when the shutdown no longer covers the outlet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import Regime
from gateway.registry import Enterprise, Outlet, Registry

from .base import BaseRule, event_time
from .shutdown import line_shutdown

FLOW_CODES = frozenset({"a00000", "w00000"})


class EmissionDuringShutdown(BaseRule):
    name = "emission_during_shutdown"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self.latest: dict[str, datetime] = {}  # subject -> latest flow reading judged

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out = []
        flows = [p for p in points if p.tag("pollutant") in FLOW_CODES]
        for point in sorted(flows, key=lambda p: p.event_time_ns):
            if point.field("flag") != "N":
                continue
            device = self.registry().device(point.tag("mn") or "")
            if device is None or device.outlet.stopped_flow is None or not device.outlet.lines:
                continue
            ent = self.registry().enterprise(device.enterprise)
            value = point.field("rtd") if point.tag("interval") == "rtd" else point.field("avg")
            if ent is None or not isinstance(value, float):
                continue
            anomaly = self._judge(ent, device.outlet, value, event_time(point), detected_at)
            if anomaly is not None:
                out.append(anomaly)
        return out

    def _judge(
        self, ent: Enterprise, outlet: Outlet, flow: float, at: datetime, detected_at: datetime
    ) -> Anomaly | None:
        subject = f"outlet:{ent.id}/{outlet.id}"
        if at < self.latest.get(subject, at):
            return None  # late: the present is judged by the latest reading
        self.latest[subject] = at
        control = self.regime.in_force(ent.id, ent.region, at)
        stops = [line_shutdown(ent, line, control) for line in outlet.lines]
        covered = max(s.since for s in stops if s) if stops and all(stops) else None
        grace_end = max(s.grace_until for s in stops if s) if covered else None
        stopped_flow = outlet.stopped_flow or 0.0
        flowing = grace_end is not None and at >= grace_end and flow > stopped_flow

        def opened(since: datetime) -> Anomaly:
            assert covered is not None and grace_end is not None
            return Anomaly(
                type="emission_during_shutdown",
                severity="alarm",
                enterprise=ent.id,
                subject=subject,
                started_at=since,
                summary=f"Outlet {outlet.id} is under shutdown since "
                f"{covered.astimezone(UTC):%Y-%m-%d %H:%M} "
                f"UTC and still emits: flow {flow:g} above its stopped level {stopped_flow:g} "
                f"since {since:%Y-%m-%d %H:%M} UTC.",
                evidence={
                    "outlet": outlet.id,
                    "mn": outlet.mn,
                    "lines": outlet.lines,
                    "flow": flow,
                    "stopped_flow": stopped_flow,
                    "shutdown_since": covered.isoformat(),
                    "grace_until": grace_end.isoformat(),
                    "level": control.level,
                    "orders": [o.id for o in control.orders],
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(current: Anomaly) -> Anomaly:
            return current.closed(
                at,
                summary=current.summary.replace("still emits", "emitted")
                + f" Stopped (or released) at {at:%Y-%m-%d %H:%M} UTC.",
                closing_flow=flow,
            )

        return self._hold(subject, flowing, at, ent.shutdown_persist_s, opened, closed)
