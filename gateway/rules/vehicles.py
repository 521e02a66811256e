"""`banned_vehicle_entry`: a vehicle enters while the control level in force bans its kind.

The level is the highest heavy-pollution alert in force for the enterprise (by id or region)
at the passage's event time. The enterprise's transport rule for that level (default: orange
and red ban diesel and gas heavy trucks of 国4 and below) decides; a whitelisted plate valid at
that time is allowed. Unknown stage, fuel or class never counts as banned (the evidence of a
ban must be in the record). Each banned entry is its own anomaly, closed at once: an entry is
an instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.regime import ControlState, Regime
from gateway.registry import Enterprise, Registry, TransportRule

from .base import BaseRule

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BannedVehicleEntry(BaseRule):
    name = "banned_vehicle_entry"
    measurements = frozenset({"vehicle_passage"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        out = []
        for point in points:
            # an entry record (not the `allowed` verdict the gateway writes back for it)
            if (
                point.measurement == "vehicle_passage"
                and point.tag("direction") == "in"
                and point.field("plate") is not None
            ):
                anomaly = self._judge(point, detected_at)
                if anomaly is not None:
                    out.append(anomaly)
        return out

    def banned(self, point: Point) -> tuple[Enterprise, ControlState, TransportRule] | None:
        """What bans this entering vehicle now (enterprise, control state, rule), or None."""
        ent = self.registry().enterprise(point.tag("enterprise") or "")
        if ent is None:
            return None
        at = _EPOCH + timedelta(microseconds=point.event_time_ns // 1000)
        control = self.regime.in_force(ent.id, ent.region, at)
        if control.level is None or control.level not in ent.transport:
            return None
        rule = ent.transport[control.level]
        stage, fuel, cls = (point.tag(k) or "" for k in ("emission_stage", "fuel", "vehicle_class"))
        if not (stage.isdigit() and int(stage) <= rule.max_banned_stage):
            return None
        if fuel not in rule.banned_fuels or cls not in rule.banned_classes:
            return None
        plate = str(point.field("plate") or "")
        if any(w.plate == plate and w.valid_from <= at < w.valid_to for w in ent.whitelist):
            return None
        return ent, control, rule

    def allowed_points(self, points: Sequence[Point]) -> list[Point]:
        """The `allowed` verdict of each entry, as points that merge into the passage's own."""
        return [
            Point(p.measurement, p.tags, (("allowed", self.banned(p) is None),), p.event_time_ns)
            for p in points
            if p.measurement == "vehicle_passage"
            and p.tag("direction") == "in"
            and p.field("plate") is not None
            and p.field("allowed") is None
        ]

    def _judge(self, point: Point, detected_at: datetime) -> Anomaly | None:
        found = self.banned(point)
        if found is None:
            return None
        ent, control, rule = found
        at = _EPOCH + timedelta(microseconds=point.event_time_ns // 1000)
        stage, fuel, cls = (point.tag(k) or "" for k in ("emission_stage", "fuel", "vehicle_class"))
        plate = str(point.field("plate") or "")
        gate = point.tag("gate") or ""
        alert = control.alerts[0]
        anomaly = Anomaly(
            type="banned_vehicle_entry",
            severity="alarm",
            enterprise=ent.id,
            subject=f"gate:{ent.id}/{gate}/{plate}",  # two vehicles, one instant: two ids
            started_at=at,
            summary=f"{plate} (国{stage} {fuel} {cls}) entered gate {gate} at "
            f"{at:%Y-%m-%d %H:%M} UTC under a {control.level} alert that bans it.",
            evidence={
                "plate": plate,
                "vin": point.field("vin"),
                "stage": stage,
                "stage_raw": point.field("stage_raw"),
                "fuel": fuel,
                "vehicle_class": cls,
                "gate": gate,
                "level": control.level,
                "alert_id": alert.id,
                "alert_window": [alert.starts_at.isoformat(), alert.ends_at.isoformat()],
                "rule": rule.model_dump(),
            },
            rule=self.name,
            detected_at=detected_at,
        )
        return anomaly.closed(at)
