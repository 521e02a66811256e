"""`production_during_shutdown`: a shutdown covers a line (an explicit order, or the plan of
the alert level in force), its ramp-down grace [2 h] from the order's or alert's start has
passed, and the line still runs for [15 min] (event time).

A line runs when one of its production meters reads `running`. The anomaly starts when the
line was first seen running after the grace, closes at the first reading where it is stopped
or no shutdown covers it any more. Each meter's latest reading is its state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import ControlState, Regime
from gateway.registry import Enterprise, Line, Registry

from .base import BaseRule, MeterStates


@dataclass(frozen=True, slots=True)
class Shutdown:
    source: str  # "order" or "<level> alert plan"
    ref: str  # the order's or alert's id
    since: datetime
    grace_until: datetime


def line_shutdown(ent: Enterprise, line: str, control: ControlState) -> Shutdown | None:
    """What stops `line` at `control.at` (an order first, else the alert level's plan), and
    when its ramp-down grace ends; None when nothing does."""
    grace = timedelta(seconds=ent.shutdown_grace_s)
    for order in control.orders_for_line(line, "shutdown"):
        return Shutdown("order", order.id, order.starts_at, order.starts_at + grace)
    plan = ent.plans.get(control.level) if control.level else None
    if plan is not None and line in plan.stop_lines:
        alert = control.alerts[0]
        source = f"{control.level} alert plan"
        return Shutdown(source, alert.id, alert.starts_at, alert.starts_at + grace)
    return None


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
        for enterprise_id, at in self.meters.update(points).items():
            ent = self.registry().enterprise(enterprise_id)
            if ent is None:
                continue
            control = self.regime.in_force(ent.id, ent.region, at)
            for line in ent.lines:
                anomaly = self._judge(ent, line, control, at, detected_at)
                if anomaly is not None:
                    out.append(anomaly)
        return out

    def _judge(
        self,
        ent: Enterprise,
        line: Line,
        control: ControlState,
        at: datetime,
        detected_at: datetime,
    ) -> Anomaly | None:
        subject = f"line:{ent.id}/{line.id}"
        production = [
            e
            for m in ent.meters
            if m.role == "production"
            and m.line == line.id
            and (e := self.meters.evidence(ent.id, m.id)) is not None
        ]
        running = any(
            self.meters.running(ent.id, m.id)
            for m in ent.meters
            if m.role == "production" and m.line == line.id
        )
        shutdown = line_shutdown(ent, line.id, control)
        if subject in self.open and not production and shutdown is not None:
            return None  # after a restart: no production reading yet, nothing proves an end

        def opened(since: datetime) -> Anomaly:
            assert shutdown is not None
            return Anomaly(
                type="production_during_shutdown",
                severity="alarm",
                enterprise=ent.id,
                subject=subject,
                started_at=since,
                summary=f"Line {line.id} is under shutdown ({shutdown.source}) since "
                f"{shutdown.since.astimezone(UTC):%Y-%m-%d %H:%M} UTC and still runs, since "
                f"{since:%Y-%m-%d %H:%M} UTC.",
                evidence={
                    "line": line.id,
                    "shutdown": {
                        "source": shutdown.source,
                        "ref": shutdown.ref,
                        "since": shutdown.since.isoformat(),
                        "grace_until": shutdown.grace_until.isoformat(),
                    },
                    "production": production,
                    "persist_s": ent.shutdown_persist_s,
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(current: Anomaly) -> Anomaly:
            return current.closed(
                at,
                summary=current.summary.replace(" and still runs", " and ran")
                + f" Stopped (or released) at {at:%Y-%m-%d %H:%M} UTC.",
                closing_production=production,
            )

        in_breach = running and shutdown is not None and at >= shutdown.grace_until
        return self._hold(subject, in_breach, at, ent.shutdown_persist_s, opened, closed)
