"""Validated MQTT payloads to the stored schema (`power` via `gateway.ingest.power`,
`vehicle_passage`). Pure, no I/O."""

from __future__ import annotations

import zlib

from gateway.ingest import PowerSample
from gateway.model import FieldValue, Point, to_ns

from .payloads import GatePayload, PowerPayload


def power_sample(payload: PowerPayload) -> PowerSample:
    """The adapter-independent sample of a validated power payload."""
    return PowerSample(
        time=payload.time,
        p_kw=payload.p_kw,
        kwh=payload.kwh,
        ua=payload.ua,
        ub=payload.ub,
        uc=payload.uc,
        ia=payload.ia,
        ib=payload.ib,
        ic=payload.ic,
        pf=payload.pf,
        switch=payload.switch,
    )


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
        ("registration_code", record.registration_code),
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
