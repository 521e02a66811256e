"""`emission_during_shutdown`: a shutdown covers every line an outlet serves (an explicit order,
the alert level's plan or a calendar control period), the ramp-down grace from the start of
the continuous obligation has passed, and the outlet still shows flow (flue gas `a00000`,
wastewater `w00000`, or their 2005 codes `B02` / `B01`) above its `stopped_flow` with a valid
flag (N), for the enterprise's persistence time [15 min], in event time.

Only outlets with `stopped_flow` and `lines` in the registry are judged, on the finest
interval the device sends (real-time, else minute, else hourly values; day values never). A
value flagged F (the device says its source is stopped) counts as stopped; other flags (M, D,
C, ...) say nothing of the flow and neither open nor close. The anomaly starts at the first
flowing value after the grace and closes at the first value at or below the stopped level (or
flagged F), or at the first value, of any flag, once the shutdown no longer covers the outlet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import Regime
from gateway.registry import Enterprise, Outlet, Registry
from gateway.vocabulary import FLOWS, canonical

from .base import BaseRule, event_time
from .finest import Finest
from .obligation import Obligation, obligation


class EmissionDuringShutdown(BaseRule):
    name = "emission_during_shutdown"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self.latest: dict[str, datetime] = {}  # subject -> latest flow reading judged
        self.finest = Finest()  # by subject

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out = []
        registry = self.registry()
        for point in sorted(points, key=lambda p: p.event_time_ns):
            device = registry.device(point.tag("mn") or "")
            if device is None or device.outlet.stopped_flow is None or not device.outlet.lines:
                continue
            outlet = device.outlet
            interval = point.tag("interval") or ""
            if canonical(point.tag("pollutant") or "", outlet.version) not in FLOWS:
                continue
            ent = registry.enterprise(device.enterprise)
            value = point.field("rtd") if interval == "rtd" else point.field("avg")
            if ent is None or not isinstance(value, float):
                continue
            subject = f"outlet:{ent.id}/{outlet.id}"
            at = event_time(point)
            if not self.finest.judged(subject, interval, at):
                continue
            flag = point.field("flag")
            anomaly = self._judge(ent, outlet, value, flag, at, detected_at)
            if anomaly is not None:
                out.append(anomaly)
        return out

    def _judge(
        self,
        ent: Enterprise,
        outlet: Outlet,
        flow: float,
        flag: object,
        at: datetime,
        detected_at: datetime,
    ) -> Anomaly | None:
        subject = f"outlet:{ent.id}/{outlet.id}"
        if at < self.latest.get(subject, at):
            return None  # late: the present is judged by the latest reading
        self.latest[subject] = at
        control = self.regime.in_force(ent.id, ent.region, at)
        stops = [obligation(self.regime, ent, line, at, control=control) for line in outlet.lines]
        shutdown = _governing(stops)
        stopped_flow = outlet.stopped_flow or 0.0
        if shutdown is not None and flag not in ("N", "F"):
            return None  # maintenance, fault, calibration...: says nothing of the flow
        flowing = (
            shutdown is not None and at >= shutdown.grace_until and flag == "N"
        ) and flow > stopped_flow

        def opened(since: datetime) -> Anomaly:
            assert shutdown is not None
            return Anomaly(
                type="emission_during_shutdown",
                severity="alarm",
                enterprise=ent.id,
                subject=subject,
                started_at=since,
                summary=f"Outlet {outlet.id} is under shutdown since "
                f"{shutdown.since.astimezone(UTC):%Y-%m-%d %H:%M} "
                f"UTC and still emits: flow {flow:g} above its stopped level {stopped_flow:g} "
                f"since {since:%Y-%m-%d %H:%M} UTC.",
                evidence={
                    "outlet": outlet.id,
                    "mn": outlet.mn,
                    "lines": outlet.lines,
                    "flow": flow,
                    "stopped_flow": stopped_flow,
                    "shutdown_since": shutdown.since.isoformat(),
                    "grace_until": shutdown.grace_until.isoformat(),
                    "shutdown": shutdown.evidence(),
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(current: Anomaly) -> Anomaly:
            why = (
                "released" if shutdown is None else "stopped" + (" (flag F)" if flag == "F" else "")
            )
            return current.closed(
                at,
                summary=current.summary.replace("still emits", "emitted")
                + f" Until {at:%Y-%m-%d %H:%M} UTC ({why}).",
                closing_flow=flow,
                closing_flag=flag,
                closed_as=why,
            )

        return self._hold(subject, flowing, at, ent.shutdown_persist_s, opened, closed)


def _governing(stops: list[Obligation | None]) -> Obligation | None:
    """The outlet's obligation when every line it serves is under one: the latest started
    (its grace ends last), with the sources of all of them."""
    if not stops or any(s is None for s in stops):
        return None
    present = [s for s in stops if s is not None]
    last = max(present, key=lambda s: s.grace_until)
    sources = {(src.kind, src.ref): src for s in present for src in s.sources}
    ordered = tuple(sorted(sources.values(), key=lambda s: (s.starts_at, s.ref)))
    return Obligation(last.since, last.grace_until, last.current, ordered)
