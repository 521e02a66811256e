"""`treatment_not_running`: a production line runs while none of its treatment facilities
(duty or standby) runs, for the line's grace time [15 min], in event time.

A line runs when one of its production meters (`role = production`, `line = <id>`) reads
`running` (power at or above its on-threshold). A facility runs when one of its meters does,
or when its `SBx-RS` (HJ 212 2021 upload) is 1. Each meter's and facility's latest reading (by
event time) is its state; a reading older than the latest one of the same source is ignored
(late data does not rewrite the past). The anomaly starts when the condition began and closes
at the first reading that ends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Enterprise, Facility, Line, Registry

from .base import DeviceEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TreatmentNotRunning:
    name = "treatment_not_running"

    def __init__(self, registry: Callable[[], Registry]) -> None:
        self.registry = registry
        self.meters: dict[tuple[str, str], tuple[datetime, bool, float | None]] = {}
        self.states: dict[tuple[str, str], tuple[datetime, int]] = {}  # (mn, SBx) -> rs
        self.since: dict[str, datetime] = {}  # subject -> condition start
        self.open: dict[str, Anomaly] = {}

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        touched: dict[str, datetime] = {}
        for point in sorted(points, key=lambda p: p.event_time_ns):
            at = _EPOCH + timedelta(microseconds=point.event_time_ns // 1000)
            enterprise = point.tag("enterprise") or ""
            if point.measurement == "power" and isinstance(point.field("running"), bool):
                key = (enterprise, point.tag("meter") or "")
                if key in self.meters and self.meters[key][0] > at:
                    continue
                p_kw = point.field("p_kw")
                self.meters[key] = (
                    at,
                    bool(point.field("running")),
                    p_kw if isinstance(p_kw, float) else None,
                )
            elif point.measurement == "facility_state" and isinstance(point.field("rs"), int):
                key = (point.tag("mn") or "", point.tag("facility") or "")
                if key in self.states and self.states[key][0] > at:
                    continue
                self.states[key] = (at, int(point.field("rs")))  # type: ignore[arg-type]
            else:
                continue
            touched[enterprise] = max(at, touched.get(enterprise, at))
        out: list[Anomaly] = []
        registry = self.registry()
        for ent in registry.data.enterprises:
            if ent.id in touched:
                for line in ent.lines:
                    anomaly = self._judge(ent, line, touched[ent.id], detected_at)
                    if anomaly is not None:
                        out.append(anomaly)
        return out

    def _line_running(self, ent: Enterprise, line: Line) -> tuple[bool, list[dict[str, object]]]:
        evidence = []
        running = False
        for meter in ent.meters:
            if meter.role == "production" and meter.line == line.id:
                state = self.meters.get((ent.id, meter.id))
                if state is not None:
                    running = running or state[1]
                    evidence.append(
                        {
                            "meter": meter.id,
                            "running": state[1],
                            "p_kw": state[2],
                            "at": state[0].isoformat(),
                            "on_threshold_kw": meter.on_threshold_kw,
                        }
                    )
        return running, evidence

    def _facility(self, ent: Enterprise, facility: Facility) -> tuple[bool, dict[str, object]]:
        meters = []
        running = False
        for meter_id in facility.meters:
            state = self.meters.get((ent.id, meter_id))
            if state is not None:
                running = running or state[1]
                meters.append(
                    {
                        "meter": meter_id,
                        "running": state[1],
                        "p_kw": state[2],
                        "at": state[0].isoformat(),
                    }
                )
        rs = None
        if facility.state is not None:
            reading = self.states.get((facility.state.mn, facility.state.facility))
            if reading is not None:
                rs = {"rs": reading[1], "at": reading[0].isoformat()}
                running = running or reading[1] == 1
        return running, {"facility": facility.id, "running": running, "meters": meters, "rs": rs}

    def _judge(
        self, ent: Enterprise, line: Line, at: datetime, detected_at: datetime
    ) -> Anomaly | None:
        if not line.treatment:
            return None
        subject = f"line:{ent.id}/{line.id}"
        producing, production = self._line_running(ent, line)
        facilities = {f.id: f for f in ent.facilities}
        treatment = []
        treated = False
        for link in line.treatment:
            running, info = self._facility(ent, facilities[link.facility])
            treated = treated or running
            treatment.append({**info, "duty": link.duty})
        bad = producing and not treated
        current = self.open.get(subject)
        if not bad:
            self.since.pop(subject, None)
            if current is None:
                return None
            del self.open[subject]
            minutes = round((at - current.started_at).total_seconds() / 60)
            return current.closed(
                at,
                summary=f"Line {line.id} ran without treatment for {minutes} min from "
                f"{current.started_at:%Y-%m-%d %H:%M} UTC, until treatment resumed or "
                "production stopped.",
                closing_production=production,
                closing_treatment=treatment,
            )
        since = self.since.setdefault(subject, at)
        if current is not None or (at - since).total_seconds() < line.treatment_grace_s:
            return None
        anomaly = Anomaly(
            type="treatment_not_running",
            severity="alarm",
            enterprise=ent.id,
            subject=subject,
            started_at=since,
            summary=f"Line {line.id} has been producing since {since:%Y-%m-%d %H:%M} UTC while "
            f"none of its treatment facilities ({_names(line)}) runs.",
            evidence={
                "line": line.id,
                "production": production,
                "treatment": treatment,
                "grace_s": line.treatment_grace_s,
                "condition_since": since.isoformat(),
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=at,
        )
        self.open[subject] = anomaly
        return anomaly

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        return []

    def on_tick(self, now: datetime) -> list[Anomaly]:
        return []

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for anomaly in open_anomalies:
            self.open[anomaly.subject] = anomaly
            self.since[anomaly.subject] = anomaly.started_at


def _names(line: Line) -> str:
    return ", ".join(link.facility for link in line.treatment)
