"""`banned_vehicle_entry`: a vehicle passes a gate while the control level in force bans its
kind.

The level is the highest heavy-pollution alert in force for the enterprise (by id or region)
at the passage's event time. The enterprise's transport rules for that level (default: orange
and red ban diesel and gas heavy trucks of 国4 and below, entering) decide, the first that
matches: its `directions` (entering; leaving too where a plan bans 进出), stage, fuel and class,
and, when it names `banned_cargo`, what the vehicle carries (`gateway.cargo`). A whitelisted
plate valid at that time is allowed (plates compared, and reported, in their `gateway.plates`
form). Unknown stage, fuel, class or cargo never counts as banned (the evidence of a ban must be
in the record). Each banned passage is its own anomaly, closed at once: a passage is an instant.

Data quality is counted (`gate_records_questioned_total{reason}`): a passage whose plate says
none was read (`no_plate`: 无牌, 未识别, ...), and a plate entering again within a day without
leaving in between (`entered_twice`; the last `MAX_PLATES` [100,000] plates remembered).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway import metrics
from gateway.anomalies.model import Anomaly
from gateway.cargo import cargo_category
from gateway.model import Point, from_ns
from gateway.plates import normalise_plate, unreadable
from gateway.regime import ControlState, Regime
from gateway.registry import Registry, TransportRule

from .base import BaseRule
from .obligation import alert_source

MAX_PLATES = 100_000
TWICE_WITHIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Ban:
    enterprise: str
    at: datetime
    plate: str
    stage: str
    fuel: str
    cls: str
    direction: str
    cargo: str | None
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
        # (enterprise, plate) -> (direction, time) of its last passage, for entered_twice
        self.last_passage: OrderedDict[tuple[str, str], tuple[str, datetime]] = OrderedDict()

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Judge each entry once: a verdict for `allowed` (see `take_verdicts`), and an
        anomaly when it is banned."""
        out = []
        for point in points:
            # a passage record (not the `allowed` verdict the gateway writes back for it)
            if point.tag("direction") not in ("in", "out") or point.field("plate") is None:
                continue
            self._question(point)
            ban = self._ban(point)
            verdict = (("allowed", ban is None),)
            self._verdicts.append(
                Point(point.measurement, point.tags, verdict, point.event_time_ns)
            )
            if ban is not None:
                out.append(self._anomaly(point, ban, detected_at))
        return out

    def _question(self, point: Point) -> None:
        """Count a passage that says little of its vehicle (see the module's docstring)."""
        plate = normalise_plate(str(point.field("plate")))
        if unreadable(plate):
            metrics.GATE_RECORDS_QUESTIONED.labels(reason="no_plate").inc()
            return
        key = (point.tag("enterprise") or "", plate)
        direction, at = point.tag("direction") or "", passage_time(point)
        before = self.last_passage.pop(key, None)
        if before is not None and (direction, before[0]) == ("in", "in"):
            twice = timedelta(0) <= at - before[1] < TWICE_WITHIN
            metrics.GATE_RECORDS_QUESTIONED.labels(reason="entered_twice").inc(int(twice))
        self.last_passage[key] = (direction, at)
        while len(self.last_passage) > MAX_PLATES:
            self.last_passage.popitem(last=False)

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
        stage, fuel, cls = (point.tag(k) or "" for k in ("emission_stage", "fuel", "vehicle_class"))
        direction = point.tag("direction") or ""
        cargo = cargo_category(point.field("cargo"))
        rule = next(
            (
                r
                for r in ent.transport[control.level]
                if _bans(r, stage, fuel, cls, direction, cargo)
            ),
            None,
        )
        if rule is None:
            return None
        plate = normalise_plate(str(point.field("plate") or ""))  # any adapter's spelling
        if any(w.plate == plate and w.valid_from <= at < w.valid_to for w in ent.whitelist):
            return None
        return _Ban(ent.id, at, plate, stage, fuel, cls, direction, cargo, control, rule)

    def _anomaly(self, point: Point, ban: _Ban, detected_at: datetime) -> Anomaly:
        gate = point.tag("gate") or ""
        alert = ban.control.alerts[0]
        anomaly = Anomaly(
            type="banned_vehicle_entry",
            severity="alarm",
            enterprise=ban.enterprise,
            subject=f"gate:{ban.enterprise}/{gate}/{ban.plate}"  # two vehicles, one instant
            + ("/out" if ban.direction == "out" else ""),
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
                "direction": ban.direction,
                "cargo": ban.cargo,
                "cargo_raw": point.field("cargo"),
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


def _bans(
    rule: TransportRule, stage: str, fuel: str, cls: str, direction: str, cargo: str | None
) -> bool:
    if direction not in rule.directions:
        return False
    if not (stage.isdigit() and int(stage) <= rule.max_banned_stage):
        return False
    if fuel not in rule.banned_fuels or cls not in rule.banned_classes:
        return False
    return not rule.banned_cargo or cargo in rule.banned_cargo


def passage_time(point: Point) -> datetime:
    """The time the gate recorded: stored passage times carry a sub-millisecond offset (from
    plate and direction, so that two vehicles at one instant stay two points), dropped here."""
    return from_ns(point.event_time_ns - point.event_time_ns % 1_000_000)
