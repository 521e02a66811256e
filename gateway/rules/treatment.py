"""`treatment_not_running`: a production line runs while none of its treatment facilities
(duty or standby) runs, for the line's grace time [15 min], in event time.

A line runs when one of its production meters (`role = production`, `line = <id>`) reads
`running` (power at or above its on-threshold). A facility runs when one of its meters does,
or when its `SBx-RS` (HJ 212 2021 upload) is 1. Each meter's and facility's latest reading (by
event time) is its state; a reading older than the latest one of the same source is ignored
(late data does not rewrite the past); a batch of readings (a meter's JSON array) is judged
reading by reading, each at its own time. The anomaly starts when the condition began and closes
at the first reading that ends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Enterprise, Facility, Line, Registry

from .base import BaseRule, MeterStates, by_time, event_time


class TreatmentNotRunning(BaseRule):
    name = "treatment_not_running"
    measurements = frozenset({"power", "facility_state"})

    def __init__(self, registry: Callable[[], Registry]) -> None:
        super().__init__()
        self.registry = registry
        self.meters = MeterStates()
        self.states: dict[tuple[str, str], tuple[datetime, int]] = {}  # (mn, SBx) -> rs

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out: list[Anomaly] = []
        for readings in by_time(points):  # a meter's array: each reading at its own time
            out += self._readings(readings, detected_at)
        return out

    def _readings(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        touched = self.meters.update(points)
        for point in points:
            rs = point.field("rs")
            if point.measurement == "facility_state" and type(rs) is int:
                at = event_time(point)
                key = (point.tag("mn") or "", point.tag("facility") or "")
                if key not in self.states or self.states[key][0] <= at:
                    self.states[key] = (at, rs)
                    enterprise = point.tag("enterprise") or ""
                    touched[enterprise] = max(at, touched.get(enterprise, at))
        out: list[Anomaly] = []
        for enterprise_id, at in touched.items():
            ent = self.registry().enterprise(enterprise_id)
            if ent is None:
                continue
            for line in ent.lines:
                anomaly = self._judge(ent, line, at, detected_at)
                if anomaly is not None:
                    out.append(anomaly)
        return out

    def _line_meters(self, ent: Enterprise, line: Line) -> list[str]:
        return [m.id for m in ent.meters if m.role == "production" and m.line == line.id]

    def _facility_running(self, ent: Enterprise, facility: Facility) -> bool:
        running = any(self.meters.running(ent.id, m) for m in facility.meters)
        if facility.state is not None:
            reading = self.states.get((facility.state.mn, facility.state.facility))
            if reading is not None:
                running = running or reading[1] == 1
        return running

    def _facility(self, ent: Enterprise, facility: Facility) -> dict[str, object]:
        """A facility's evidence (built only when an anomaly opens or closes)."""
        rs = None
        if facility.state is not None:
            reading = self.states.get((facility.state.mn, facility.state.facility))
            if reading is not None:
                rs = {"rs": reading[1], "at": reading[0].isoformat()}
        return {
            "facility": facility.id,
            "running": self._facility_running(ent, facility),
            "meters": self.meters.readings(ent.id, facility.meters),
            "rs": rs,
        }

    def _judge(
        self, ent: Enterprise, line: Line, at: datetime, detected_at: datetime
    ) -> Anomaly | None:
        if not line.treatment:
            return None
        subject = f"line:{ent.id}/{line.id}"
        meters = self._line_meters(ent, line)
        producing = any(self.meters.running(ent.id, m) for m in meters)
        by_id = {f.id: f for f in ent.facilities}
        facilities = [(link.duty, by_id[link.facility]) for link in line.treatment]
        treated = any(self._facility_running(ent, f) for _, f in facilities)
        if subject in self.open and not self.meters.seen(ent.id, meters) and not treated:
            return None  # after a restart: no production reading yet, nothing proves an end

        def treatment() -> list[dict[str, object]]:
            return [{**self._facility(ent, f), "duty": duty} for duty, f in facilities]

        def opened(since: datetime) -> Anomaly:
            return Anomaly(
                type="treatment_not_running",
                severity="alarm",
                enterprise=ent.id,
                subject=subject,
                started_at=since,
                summary=f"Line {line.id} has been producing since {since:%Y-%m-%d %H:%M} UTC "
                f"while none of its treatment facilities ({_names(line)}) runs.",
                evidence={
                    "line": line.id,
                    "production": self.meters.readings(ent.id, meters),
                    "treatment": treatment(),
                    "grace_s": line.treatment_grace_s,
                    "condition_since": since.isoformat(),
                },
                rule=self.name,
                detected_at=detected_at,
                as_of=at,
            )

        def closed(current: Anomaly) -> Anomaly:
            minutes = round((at - current.started_at).total_seconds() / 60)
            return current.closed(
                at,
                summary=f"Line {line.id} ran without treatment for {minutes} min from "
                f"{current.started_at:%Y-%m-%d %H:%M} UTC, until treatment resumed or "
                "production stopped.",
                closing_production=self.meters.readings(ent.id, meters),
                closing_treatment=treatment(),
            )

        bad = producing and not treated
        return self._hold(subject, bad, at, line.treatment_grace_s, opened, closed)


def _names(line: Line) -> str:
    return ", ".join(link.facility for link in line.treatment)
