"""`banned_vehicle_entry`: a vehicle passes a gate while a transport rule in force bans its
kind.

Two kinds of rules are judged at the passage's event time. The enterprise's rules of every
plan key in force (`ControlState.plan_keys()`: the layers of control, reinforced first, then
the highest alert level; a reinforced layer's rules apply on top of the level's; default:
orange and red ban diesel and gas heavy trucks of 国4 and below, entering), then the registry's
standing rules (`transport_standing`, in force outside alerts from their `since` for the
enterprises, industries and regions they name). The first rule that bans the vehicle is
reported, with the key and alert, or the standing rule, that brought it (`source`).

A rule bans by its `directions` (entering; leaving too where a plan bans 进出), its
`time_windows` of the Beijing day and `months` (staggered transport; none: always), the class,
then stage and fuel, and, when it names `banned_cargo`, what the vehicle carries
(`gateway.cargo`). A `require_registration` rule bans instead a vehicle of its classes
(non-road machinery) whose record has no `registration_code` (登记编码), its stage and fuel
aside; only at gates whose system sends the code (`registration_codes = true`), so a gate
that never sends it raises nothing. A whitelisted plate valid at that time is allowed (plates
compared, and reported, in their `gateway.plates` form). Unknown stage, fuel, class or cargo
never counts as banned (the evidence of a ban must be in the record). Each banned passage is
its own anomaly, closed at once: a passage is an instant.

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
from gateway.regime import Alert, PlanKey, Regime
from gateway.registry import Registry, StandingTransportRule, TransportRule

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
    rule: TransportRule
    key: PlanKey | None  # the plan key that brought it; None for a standing rule
    alert: Alert | None  # the alert that brought the key
    standing: StandingTransportRule | None


@dataclass(frozen=True, slots=True)
class _Vehicle:
    """A passage as the rules judge it."""

    at: datetime
    stage: str
    fuel: str
    cls: str
    direction: str
    cargo: str | None
    registered: bool | None  # has a registration code; None where the gate sends none


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
        """What bans this passing vehicle at its event time, or None."""
        registry = self.registry()
        ent = registry.enterprise(point.tag("enterprise") or "")
        if ent is None:
            return None
        at = passage_time(point)
        gate = registry.gate(ent.id, point.tag("gate") or "")
        code = point.field("registration_code")
        vehicle = _Vehicle(
            at,
            stage=point.tag("emission_stage") or "",
            fuel=point.tag("fuel") or "",
            cls=point.tag("vehicle_class") or "",
            direction=point.tag("direction") or "",
            cargo=cargo_category(point.field("cargo")),
            registered=bool(code) if gate is not None and gate.registration_codes else None,
        )
        control = self.regime.in_force(ent.id, ent.region, at)
        found: tuple[TransportRule, PlanKey | None, Alert | None, StandingTransportRule | None]
        for key in control.plan_keys():
            rule = next((r for r in ent.transport.get(key, ()) if _bans(r, vehicle)), None)
            if rule is not None:
                alerts = control.alerts_for(key)
                found = (rule, key, alerts[0] if alerts else None, None)
                break
        else:
            standing = next(
                (r for r in registry.standing_transport(ent, at) if _bans(r, vehicle)), None
            )
            if standing is None:
                return None
            found = (standing.rule(), None, None, standing)
        plate = normalise_plate(str(point.field("plate") or ""))  # any adapter's spelling
        if any(w.plate == plate and w.valid_from <= at < w.valid_to for w in ent.whitelist):
            return None
        v = vehicle
        return _Ban(ent.id, at, plate, v.stage, v.fuel, v.cls, v.direction, v.cargo, *found)

    def _anomaly(self, point: Point, ban: _Ban, detected_at: datetime) -> Anomaly:
        gate = point.tag("gate") or ""
        alert, standing = ban.alert, ban.standing
        if standing is not None:
            source: dict[str, object] = {
                "kind": "standing rule",
                "ref": standing.name,
                "since": standing.since.isoformat(),
                "until": standing.until.isoformat() if standing.until else None,
            }
            under = f"standing rule {standing.name} (since {standing.since:%Y-%m-%d})"
        else:
            # an alert plan or a control period
            source = alert_source(alert, key=ban.key).evidence() if alert else {}
            under = f"the {ban.key} alert"
        anomaly = Anomaly(
            type="banned_vehicle_entry",
            severity="alarm",
            enterprise=ban.enterprise,
            subject=f"gate:{ban.enterprise}/{gate}/{ban.plate}"  # two vehicles, one instant
            + ("/out" if ban.direction == "out" else ""),
            started_at=ban.at,
            summary=f"{ban.plate} (国{ban.stage} {ban.fuel} {ban.cls}) entered gate {gate} at "
            f"{ban.at:%Y-%m-%d %H:%M} UTC under {under}, which bans it.",
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
                "registration_code": point.field("registration_code"),
                "gate": gate,
                "level": ban.key,  # the plan key (a level or a layer); null: a standing rule
                "alert_id": alert.id if alert else None,
                "alert_window": (
                    [alert.starts_at.isoformat(), alert.ends_at.isoformat()] if alert else None
                ),
                "source": source,
                "rule": ban.rule.model_dump(),
            },
            rule=self.name,
            detected_at=detected_at,
        )
        return anomaly.closed(ban.at)


def _bans(rule: TransportRule, v: _Vehicle) -> bool:
    if v.direction not in rule.directions or v.cls not in rule.banned_classes:
        return False
    if not rule.in_window(v.at):
        return False
    if rule.require_registration:
        return v.registered is False
    if not (v.stage.isdigit() and int(v.stage) <= rule.max_banned_stage):
        return False
    if v.fuel not in rule.banned_fuels:
        return False
    return not rule.banned_cargo or v.cargo in rule.banned_cargo


def passage_time(point: Point) -> datetime:
    """The time the gate recorded: stored passage times carry a sub-millisecond offset (from
    plate and direction, so that two vehicles at one instant stay two points), dropped here."""
    return from_ns(point.event_time_ns - point.event_time_ns % 1_000_000)
