"""`production_during_shutdown`: a shutdown covers a line (an explicit order; the plan in force
for a level or layer in force, declared or a calendar control period, the enterprise's own or
its grade's default; or a schedule's window, 错峰生产 or a time-of-day window, from which a
heating-duty line is exempt during a 错峰 period with make-up), its ramp-down grace [2 h]
from the start of the continuous obligation has passed, and the line still runs for [15 min]
(event time).

A line runs when one of its production meters reads `running`; each reading is judged at its
own time (a meter's array of readings too). The anomaly starts when the line was first seen
running after the grace, closes at the first reading where it is stopped or no shutdown covers
it any more. An obligation that passes from one source to another (orange plan then red plan,
a control period then an alert) is one obligation: the grace does not start again and the
anomaly stays open, its evidence listing every source in force over it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import ControlState, Regime
from gateway.registry import Enterprise, Line, Registry

from .base import BaseRule, MeterStates, by_time
from .obligation import Obligation, obligation


class ProductionDuringShutdown(BaseRule):
    name = "production_during_shutdown"
    measurements = frozenset({"power"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self.meters = MeterStates()

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out = []
        for readings in by_time(points):
            for enterprise_id, at in self.meters.update(readings).items():
                ent = self.registry().enterprise(enterprise_id)
                if ent is None:
                    continue
                control = self.regime.in_force(ent.id, ent.region, at)
                for line in ent.lines:
                    anomaly = self._judge(ent, line, at, control, detected_at)
                    if anomaly is not None:
                        out.append(anomaly)
        return out

    def _judge(
        self,
        ent: Enterprise,
        line: Line,
        at: datetime,
        control: ControlState,
        detected_at: datetime,
    ) -> Anomaly | None:
        subject = f"line:{ent.id}/{line.id}"
        meters = [m.id for m in ent.meters if m.role == "production" and m.line == line.id]
        running = any(self.meters.running(ent.id, m) for m in meters)
        shutdown = obligation(self.regime, ent, line.id, at, control=control)
        current = self.open.get(subject)
        if current is not None and not self.meters.seen(ent.id, meters) and shutdown is not None:
            return None  # after a restart: no production reading yet, nothing proves an end

        def opened(since: datetime) -> Anomaly:
            assert shutdown is not None
            return Anomaly(
                type="production_during_shutdown",
                severity="alarm",
                enterprise=ent.id,
                subject=subject,
                started_at=since,
                summary=_summary(line.id, shutdown, since),
                evidence={
                    "line": line.id,
                    "shutdown": shutdown.evidence(),
                    "production": self.meters.readings(ent.id, meters),
                    "persist_s": ent.shutdown_persist_s,
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(anomaly: Anomaly) -> Anomaly:
            return anomaly.closed(
                at,
                summary=anomaly.summary.replace(" and still runs", " and ran")
                + f" Stopped (or released) at {at:%Y-%m-%d %H:%M} UTC.",
                closing_production=self.meters.readings(ent.id, meters),
            )

        in_breach = running and shutdown is not None and at >= shutdown.grace_until
        if in_breach and current is not None and shutdown is not None:
            return self._more_sources(subject, current, shutdown, at)
        return self._hold(subject, in_breach, at, ent.shutdown_persist_s, opened, closed)

    def _more_sources(
        self, subject: str, current: Anomaly, shutdown: Obligation, at: datetime
    ) -> Anomaly | None:
        """While open: an update when a source joined the obligation."""
        known = current.evidence["shutdown"].get("sources", [])
        sources = shutdown.evidence()["sources"]
        if not isinstance(sources, list) or len(sources) <= len(known):
            return None
        anomaly = current.updated(at, shutdown={**current.evidence["shutdown"], "sources": sources})
        self.open[subject] = anomaly
        return anomaly


def _summary(line: str, shutdown: Obligation, since: datetime) -> str:
    return (
        f"Line {line} is under shutdown ({shutdown.current.label}) since "
        f"{shutdown.since.astimezone(UTC):%Y-%m-%d %H:%M} UTC and still runs, since "
        f"{since:%Y-%m-%d %H:%M} UTC."
    )
