"""Validated MQTT payloads to the stored schema (`power`, `vehicle_passage`). Pure, no I/O.

Power values are stored primary-side: p_kw, kwh and the interval energy are multiplied by
CT x PT, voltages by PT, currents by CT (ratios from the registry; 1 when not registered).
"""

from __future__ import annotations

import zlib

from gateway.model import FieldValue, Point, to_ns
from gateway.registry import Meter

from .energy import EnergyDelta
from .payloads import GatePayload, PowerPayload

UNREGISTERED = "unregistered"


def power_point(
    enterprise: str,
    meter_id: str,
    meter: Meter | None,
    sample: PowerPayload,
    delta: EnergyDelta | None,
) -> Point:
    """One `power` point; `delta` is the interval energy since the meter's previous reading."""
    ct = meter.ct_ratio if meter else 1.0
    pt = meter.pt_ratio if meter else 1.0
    fields: list[tuple[str, FieldValue]] = []
    scaled = (
        ("p_kw", sample.p_kw, ct * pt),
        ("kwh", sample.kwh, ct * pt),
        ("ua", sample.ua, pt),
        ("ub", sample.ub, pt),
        ("uc", sample.uc, pt),
        ("ia", sample.ia, ct),
        ("ib", sample.ib, ct),
        ("ic", sample.ic, ct),
        ("pf", sample.pf, 1.0),
    )
    for name, value, factor in scaled:
        if value is not None:
            fields.append((name, float(value) * factor))
    if sample.switch is not None:
        fields.append(("switch", int(sample.switch)))
    if delta is not None and delta.kwh is not None:
        fields.append(("energy_kwh", delta.kwh))
    if delta is not None and delta.flagged:
        fields.append(("energy_note", delta.kind))
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


def judge_running(
    meter: Meter | None, sample: PowerPayload, delta: EnergyDelta | None, ratio: float
) -> bool | None:
    """Running when power (or the mean power of the interval) reaches the on-threshold.

    This is the sample's own verdict; persistence over time is the rules' business.
    """
    threshold = meter.on_threshold_kw if meter else Meter.model_fields["on_threshold_kw"].default
    if sample.p_kw is not None:
        return bool(sample.p_kw * ratio >= threshold)
    if delta is not None and delta.kwh is not None and delta.previous_time is not None:
        hours = (sample.time - delta.previous_time).total_seconds() / 3600
        if hours > 0:
            return bool(delta.kwh / hours >= threshold)
    return None


def gate_point(enterprise: str, gate_id: str, record: GatePayload) -> Point:
    """One `vehicle_passage` point.

    Two vehicles may pass one gate in the same instant, and the plate is a field, not a tag:
    the time gets a deterministic sub-millisecond offset from the plate and direction, so two
    vehicles never overwrite each other while a replayed record is still the same point.
    """
    fields: list[tuple[str, FieldValue]] = [("plate", record.plate)]
    texts = (
        ("plate_color", record.plate_color),
        ("vin", record.vin),
        ("engine_no", record.engine_no),
        ("stage_raw", record.stage_raw),
        ("cargo", record.cargo),
        ("fleet", record.fleet),
        ("photo_url", record.photo_url),
    )
    fields += [(name, value) for name, value in texts if value]
    if record.tonnage is not None:
        fields.append(("tonnage", float(record.tonnage)))
    if record.registration_date is not None:
        fields.append(("registration_date", record.registration_date.isoformat()))
    tags = (
        ("enterprise", enterprise),
        ("gate", gate_id),
        ("direction", record.direction),
        ("emission_stage", record.emission_stage or ""),
        ("fuel", record.fuel or ""),
        ("vehicle_class", record.vehicle_class or ""),
    )
    offset = zlib.crc32(f"{record.plate}|{record.direction}".encode()) % 1_000_000
    return Point("vehicle_passage", tags, tuple(fields), to_ns(record.time) + offset)
