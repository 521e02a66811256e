"""What an outlet's stack shows against what its production meters say, for outlets whose
`lines` have production meters (the meters' verdicts as `source_running` keeps them; a record
waits, bounded, until the meters have reported up to its time):

- `flow_mismatch`, pattern `no_flow`: a line produces while the outlet's flow (flue gas
  `a00000`, wastewater `w00000`, 2005 `B02` / `B01`) is at or below its `stopped_flow`: the gas
  or water leaves another way (a bypass), or the flow meter is tampered with;
- `flow_mismatch`, pattern `flow_idle`: no line produces, the flow is above `stopped_flow`, and no
  shutdown covers the lines (that is `emission_during_shutdown`'s): the production meters do not
  see what runs, or another source discharges here;
  both held for `mismatch_persist_s` [30 min], judged on flow records flagged N of the finest
  interval the device sends;
- `dilution`: while a line produces, the hourly O2 (`a19001`, 2005 `S01`, flag N) is more than
  `dilution_o2_rise` [3] percentage points above the outlet's normal, the median of its last
  `O2_HISTORY` [168] hourly O2 values while producing (once 24 are known), for
  `dilution_persist_s` [2 h]: air let in to dilute the measured concentrations.

One anomaly per outlet and pattern (subject `outlet:{enterprise}/{outlet}:{pattern}`), from the
first record of the condition; it closes at the first judged record without it. Outlets with
no `stopped_flow` are not judged on flow.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import Regime
from gateway.registry import Enterprise, Outlet, Registry
from gateway.vocabulary import FLOWS, O2, canonical

from .base import BaseRule, event_time
from .finest import Finest
from .obligation import obligation
from .source_running import (
    Production,
    SourceRunning,
    WaitingRecords,
    production_meters,
    record_value,
)

O2_HISTORY = 168
O2_MIN_HISTORY = 24
MAX_WAITING = 20_000  # records waiting for the meters, in all


class OperatingMismatch(BaseRule):
    name = "operating_mismatch"
    measurements = frozenset({"emission", "power"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self.source = SourceRunning()
        self.waits = WaitingRecords(self.source, MAX_WAITING)
        self.finest = Finest()  # by MN
        self.o2: dict[str, deque[float]] = {}  # subject -> O2 hours while producing

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        touched = self.source.meters.update(points)
        registry = self.registry()
        out: list[Anomaly] = []

        def judge(ent: Enterprise, outlet: Outlet, point: Point, producing: bool) -> None:
            found = self._judge(ent, outlet, point, producing, detected_at)
            out.extend(a for a in found if a is not None)

        self.waits.release_touched(registry, touched, judge)
        for point in sorted(points, key=lambda p: p.event_time_ns):
            if point.measurement != "emission":
                continue
            device = registry.device(point.tag("mn") or "")
            ent = registry.enterprise(device.enterprise) if device is not None else None
            if device is None or ent is None or not production_meters(ent, device.outlet):
                continue
            if self._wanted(device.outlet, point):
                self.waits.add(ent.id, device.outlet.mn, point)
                self.waits.release(registry, device.outlet.mn, judge)
        self.waits.bound(registry, judge)
        return out

    def _wanted(self, outlet: Outlet, point: Point) -> bool:
        code = canonical(point.tag("pollutant") or "", outlet.version)
        interval = point.tag("interval") or ""
        if code == O2:
            return interval == "hour"
        if code not in FLOWS or outlet.stopped_flow is None:
            return False
        return self.finest.judged(outlet.mn, interval, event_time(point))

    def _judge(
        self, ent: Enterprise, outlet: Outlet, point: Point, producing: bool, detected_at: datetime
    ) -> list[Anomaly | None]:
        value, flag = record_value(point), point.field("flag")
        if flag != "N" or not isinstance(value, float):
            return []
        at = event_time(point)
        code = canonical(point.tag("pollutant") or "", outlet.version)
        production = self.source.evidence(ent, outlet, Production(producing), at)
        if code == O2:
            shown = {"pollutant": O2, "code_sent": point.tag("pollutant"), "interval": "hour"}
            production |= shown  # what the chart reads
            return [self._dilution(ent, outlet, value, producing, at, production, detected_at)]
        floor = outlet.stopped_flow or 0.0
        if value > floor and not producing and self._shut(ent, outlet, at):
            idle = False  # under a shutdown: emission_during_shutdown judges it
        else:
            idle = value > floor and not producing
        out: list[Anomaly | None] = []
        for pattern, holds in (("no_flow", producing and value <= floor), ("flow_idle", idle)):
            subject = f"outlet:{ent.id}/{outlet.id}:{pattern}"
            evidence = {"flow": value, "stopped_flow": floor, "code_sent": point.tag("pollutant")}

            def opened(
                since: datetime, pattern: str = pattern, ev: dict[str, Any] = evidence
            ) -> Anomaly:
                type_ = "flow_mismatch"
                return self._anomaly(
                    type_, ent, outlet, pattern, since, ev | production, at, detected_at
                )

            def closed(anomaly: Anomaly) -> Anomaly:
                return anomaly.closed(at, closing_flow=value, closing_running=producing)

            out.append(self._hold(subject, holds, at, outlet.mismatch_persist_s, opened, closed))
        return out

    def _shut(self, ent: Enterprise, outlet: Outlet, at: datetime) -> bool:
        control = self.regime.in_force(ent.id, ent.region, at)
        return all(
            obligation(self.regime, ent, line, at, control=control) is not None
            for line in outlet.lines
        )

    def _dilution(
        self,
        ent: Enterprise,
        outlet: Outlet,
        o2: float,
        producing: bool,
        at: datetime,
        production: dict[str, Any],
        detected_at: datetime,
    ) -> Anomaly | None:
        subject = f"outlet:{ent.id}/{outlet.id}:dilution"
        history = self.o2.setdefault(subject, deque(maxlen=O2_HISTORY))
        normal = statistics.median(history) if len(history) >= O2_MIN_HISTORY else None
        holds = producing and normal is not None and o2 > normal + outlet.dilution_o2_rise
        if producing and not holds:
            history.append(o2)  # diluted hours do not become the normal
        evidence = {
            "o2": o2,
            "normal_o2": normal,
            "o2_rise": outlet.dilution_o2_rise,
            "o2_hours_known": len(history),
        }

        def opened(since: datetime) -> Anomaly:
            type_ = "dilution"
            return self._anomaly(
                type_, ent, outlet, "dilution", since, evidence | production, at, detected_at
            )

        def closed(anomaly: Anomaly) -> Anomaly:
            return anomaly.closed(at, closing_o2=o2, closing_running=producing)

        return self._hold(subject, holds, at, outlet.dilution_persist_s, opened, closed)

    def _anomaly(
        self,
        type_: str,
        ent: Enterprise,
        outlet: Outlet,
        pattern: str,
        since: datetime,
        evidence: dict[str, Any],
        at: datetime,
        detected_at: datetime,
    ) -> Anomaly:
        return Anomaly(
            type=type_,
            severity="warning",
            enterprise=ent.id,
            subject=f"outlet:{ent.id}/{outlet.id}:{pattern}",
            started_at=since,
            summary=f"Outlet {outlet.id}: {pattern} since {since.isoformat()}.",
            evidence={
                "outlet": outlet.id,
                "mn": outlet.mn,
                "lines": outlet.lines,
                "pattern": pattern,
                "persist_s": outlet.dilution_persist_s
                if type_ == "dilution"
                else outlet.mismatch_persist_s,
                **evidence,
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=at,
        )
