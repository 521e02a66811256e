"""`banned_vehicle_entry`: a vehicle enters while the control level in force bans its kind.

The level is the highest heavy-pollution alert in force for the enterprise (by id or region)
at the passage's event time. The enterprise's transport rule for that level (default: orange
and red ban diesel and gas heavy trucks of 国4 and below) decides; a whitelisted plate valid at
that time is allowed (plates compared, and reported, in their `gateway.plates` form). Unknown
stage, fuel or class never counts as banned (the evidence of a ban must be in the record). Each
banned entry is its own anomaly, closed at once: an entry is an instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point, from_ns
from gateway.plates import normalise_plate
from gateway.regime import ControlState, Regime
from gateway.registry import Registry, TransportRule

from .base import BaseRule
from .obligation import alert_source


@dataclass(frozen=True, slots=True)
class _Ban:
    enterprise: str
    at: datetime
    plate: str
    stage: str
    fuel: str
    cls: str
    control: ControlState
    rule: TransportRule


class BannedVehicleEntry(BaseRule):
    name = "banned_vehicle_entry"
    measurements = frozenset({"vehicle_passage"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime
        self._verdicts: list[Point] = []

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Judge each entry once: a verdict for `allowed` (see `take_verdicts`), and an
        anomaly when it is banned."""
        out = []
        for point in points:
            # an entry record (not the `allowed` verdict the gateway writes back for it)
            if point.tag("direction") != "in" or point.field("plate") is None:
                continue
            ban = self._ban(point)
            verdict = (("allowed", ban is None),)
            self._verdicts.append(
                Point(point.measurement, point.tags, verdict, point.event_time_ns)
            )
            if ban is not None:
                out.append(self._anomaly(point, ban, detected_at))
        return out

    def take_verdicts(self) -> list[Point]:
        """The `allowed` verdicts judged since the last call, as points that merge into the
        passages' own (same series and time)."""
        verdicts, self._verdicts = self._verdicts, []
        return verdicts

    def _ban(self, point: Point) -> _Ban | None:
        """What bans this entering vehicle at its event time, or None."""
        ent = self.registry().enterprise(point.tag("enterprise") or "")
        if ent is None:
            return None
        at = passage_time(point)
        control = self.regime.in_force(ent.id, ent.region, at)
        if control.level is None or control.level not in ent.transport:
            return None
        rule = ent.transport[control.level]
        stage, fuel, cls = (point.tag(k) or "" for k in ("emission_stage", "fuel", "vehicle_class"))
        if not (stage.isdigit() and int(stage) <= rule.max_banned_stage):
            return None
        if fuel not in rule.banned_fuels or cls not in rule.banned_classes:
            return None
        plate = normalise_plate(str(point.field("plate") or ""))  # any adapter's spelling
        if any(w.plate == plate and w.valid_from <= at < w.valid_to for w in ent.whitelist):
            return None
        return _Ban(ent.id, at, plate, stage, fuel, cls, control, rule)

    def _anomaly(self, point: Point, ban: _Ban, detected_at: datetime) -> Anomaly:
        gate = point.tag("gate") or ""
        alert = ban.control.alerts[0]
        anomaly = Anomaly(
            type="banned_vehicle_entry",
            severity="alarm",
            enterprise=ban.enterprise,
            subject=f"gate:{ban.enterprise}/{gate}/{ban.plate}",  # two vehicles, one instant
            started_at=ban.at,
            summary=f"{ban.plate} (国{ban.stage} {ban.fuel} {ban.cls}) entered gate {gate} at "
            f"{ban.at:%Y-%m-%d %H:%M} UTC under the {ban.control.level} alert, which bans it.",
            evidence={
                "plate": ban.plate,
                "vin": point.field("vin"),
                "stage": ban.stage,
                "stage_raw": point.field("stage_raw"),
                "fuel": ban.fuel,
                "vehicle_class": ban.cls,
                "gate": gate,
                "level": ban.control.level,
                "alert_id": alert.id,
                "alert_window": [alert.starts_at.isoformat(), alert.ends_at.isoformat()],
                "source": alert_source(alert).evidence(),  # an alert plan or a control period
                "rule": ban.rule.model_dump(),
            },
            rule=self.name,
            detected_at=detected_at,
        )
        return anomaly.closed(ban.at)


def passage_time(point: Point) -> datetime:
    """The time the gate recorded: stored passage times carry a sub-millisecond offset (from
    plate and direction, so that two vehicles at one instant stay two points), dropped here."""
    return from_ns(point.event_time_ns - point.event_time_ns % 1_000_000)
