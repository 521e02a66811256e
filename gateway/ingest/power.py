"""Power samples (from MQTT JSON or HJ 212 codes) to `power` points. Pure apart from the
per-meter counter state it keeps for interval energy.

Values are stored primary-side: p_kw, kwh and the interval energy are multiplied by CT x PT,
voltages by PT, currents by CT (ratios from the registry; 1 when the meter is not registered).
Interval energy state lives in memory: after a restart a meter's first reading has no delta.
Where one process does not see all of a meter's readings (ingestion nodes of a cluster, which a
shared MQTT subscription hands a meter's readings in turn), the converter leaves it out and
`with_energy` adds it where they meet (the rule worker of the meter's enterprise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.ingest.energy import EnergyDelta, EnergyHistory, EnergyTracker
from gateway.model import FieldValue, Point, from_ns, to_ns
from gateway.registry import Meter, Registry

UNREGISTERED = "unregistered"
QUANTITIES = ("p_kw", "kwh", "ua", "ub", "uc", "ia", "ib", "ic", "pf", "switch")
_DEFAULT_ON_KW = Meter.model_fields["on_threshold_kw"].default
# each quantity with its factor (0: CT x PT, 1: PT, 2: CT, 3: none), in the stored order
_SCALED = (
    ("p_kw", 0),
    ("kwh", 0),
    ("ua", 1),
    ("ub", 1),
    ("uc", 1),
    ("ia", 2),
    ("ib", 2),
    ("ic", 2),
    ("pf", 3),
)


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One reading of one meter; `time` is aware (any zone)."""

    time: datetime
    p_kw: float | None = None
    kwh: float | None = None
    ua: float | None = None
    ub: float | None = None
    uc: float | None = None
    ia: float | None = None
    ib: float | None = None
    ic: float | None = None
    pf: float | None = None
    switch: int | None = None


class PowerConverter:
    """Shared by every adapter that receives power data, so a meter's counter is tracked once.
    `registry` is read at each point (a callable given, such as the registry holder, follows
    reloads). Without `derive_energy` the points carry no interval energy (nor a `running`
    judged from it): `with_energy` adds them downstream."""

    def __init__(
        self, registry: Registry | Callable[[], Registry], *, derive_energy: bool = True
    ) -> None:
        self._registry = registry if callable(registry) else lambda: registry
        self.energy = EnergyTracker() if derive_energy else None

    @property
    def registry(self) -> Registry:
        return self._registry()

    def point(self, enterprise: str, meter_id: str, sample: PowerSample) -> Point:
        meter = self.registry.meter(enterprise, meter_id)
        delta = None
        if sample.kwh is not None and self.energy is not None:
            delta = self.energy.interval_energy(
                f"{enterprise}/{meter_id}",
                sample.time,
                sample.kwh,
                ct_ratio=meter.ct_ratio if meter else 1.0,
                pt_ratio=meter.pt_ratio if meter else 1.0,
                rollover_at=meter.rollover_at if meter else None,
            )
        return power_point(enterprise, meter_id, meter, sample, delta)


def power_point(
    enterprise: str,
    meter_id: str,
    meter: Meter | None,
    sample: PowerSample,
    delta: EnergyDelta | None,
) -> Point:
    """One `power` point; `delta` is the interval energy since the meter's previous reading."""
    ct = meter.ct_ratio if meter else 1.0
    pt = meter.pt_ratio if meter else 1.0
    factors = (ct * pt, pt, ct, 1.0)
    fields: list[tuple[str, FieldValue]] = []
    for name, scale in _SCALED:
        value = getattr(sample, name)
        if value is not None:
            fields.append((name, float(value) * factors[scale]))
    if sample.switch is not None:
        fields.append(("switch", int(sample.switch)))
    if delta is not None:
        fields += _energy_fields(delta)
    running = judge_running(meter, sample, delta, ct * pt)
    if running is not None:
        fields.append(("running", running))
    tags = (
        ("enterprise", enterprise),
        ("meter", meter_id),
        ("role", meter.role if meter else UNREGISTERED),
        ("line", meter.line if meter else ""),
    )
    return Point("power", tags, tuple(fields), to_ns(sample.time))


def with_energy(
    point: Point, energy: EnergyHistory, registry: Registry
) -> tuple[list[Point], list[Point]]:
    """A `power` point made without interval energy: what the rules judge of it, and what to
    store for it. `energy` must see every reading of the meter, in any order.

    Stored: points of the same series and time (InfluxDB merges them into the stored
    readings) with `energy_kwh`, `energy_note` and a `running` judged from the energy, for the
    reading and for each later one whose interval it split (their `running` stays as judged).
    Judged: the point with them, then for each split reading a point at its time with only
    the change of its `energy_kwh` (negative), so that what the rules sum by hour is what they
    sum of the readings in time order. Other points: judged as they are, nothing stored."""
    kwh = point.field("kwh")
    if point.measurement != "power" or not isinstance(kwh, float):
        return [point], []
    enterprise, meter_id = point.tag("enterprise") or "", point.tag("meter") or ""
    meter = registry.meter(enterprise, meter_id)
    ct = meter.ct_ratio if meter else 1.0
    pt = meter.pt_ratio if meter else 1.0
    at = from_ns(point.event_time_ns)
    (_, delta, _), *later = energy.take(
        f"{enterprise}/{meter_id}",
        at,
        kwh / (ct * pt),  # the counter's own reading: the point's is primary-side
        ct_ratio=ct,
        pt_ratio=pt,
        rollover_at=meter.rollover_at if meter else None,
    )
    added = _energy_fields(delta)
    if point.field("running") is None:
        running = judge_running(meter, PowerSample(at, kwh=kwh), delta, ct * pt)
        if running is not None:
            added.append(("running", running))
    judged = [point._replace(fields=point.fields + tuple(added))]
    stored = [point._replace(fields=tuple(added))] if added else []
    for when, now, before in later:
        ns = to_ns(when)
        fields = _energy_fields(now)
        if fields:
            stored.append(point._replace(fields=tuple(fields), event_time_ns=ns))
        change = (now.kwh or 0.0) - (before.kwh if before is not None and before.kwh else 0.0)
        if change:
            judged.append(point._replace(fields=(("energy_kwh", change),), event_time_ns=ns))
    return judged, stored


def _energy_fields(delta: EnergyDelta) -> list[tuple[str, FieldValue]]:
    fields: list[tuple[str, FieldValue]] = []
    if delta.kwh is not None:
        fields.append(("energy_kwh", delta.kwh))
    if delta.flagged:
        fields.append(("energy_note", delta.kind))
    return fields


def judge_running(
    meter: Meter | None, sample: PowerSample, delta: EnergyDelta | None, ratio: float
) -> bool | None:
    """Running when power (or the interval's mean power) reaches the meter's on-threshold.

    This is the sample's own verdict; persistence over time is the rules' business.
    """
    threshold = meter.on_threshold_kw if meter else _DEFAULT_ON_KW
    if sample.p_kw is not None:
        return bool(sample.p_kw * ratio >= threshold)
    if delta is not None and delta.kwh is not None and delta.previous_time is not None:
        hours = (sample.time - delta.previous_time).total_seconds() / 3600
        if hours > 0:
            return bool(delta.kwh / hours >= threshold)
    return None
