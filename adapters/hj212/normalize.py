"""HJ 212 frames to the stored schema (`emission`, `facility_state`). Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from gateway.model import FieldValue, Point, to_ns

from .cp import CpData, parse_hj212_time
from .errors import CpError
from .frame import Frame

INTERVAL_BY_CN = {"2011": "rtd", "2051": "minute", "2061": "hour", "2031": "day"}
DATA_COMMANDS = frozenset({"2011", "2051", "2061", "2031", "2021", "2041"})
# suffix -> (field name, numeric)
_EMISSION_FIELDS = {
    "Rtd": ("rtd", True),
    "Avg": ("avg", True),
    "Min": ("min", True),
    "Max": ("max", True),
    "Cou": ("cou", True),
    "ZsRtd": ("zs_rtd", True),
    "ZsAvg": ("zs_avg", True),
    "ZsMin": ("zs_min", True),
    "ZsMax": ("zs_max", True),
    "Flag": ("flag", False),
    "EFlag": ("eflag", False),
}


@dataclass(frozen=True, slots=True)
class Source:
    """What the registry says about the device that sent a frame."""

    enterprise: str
    outlet: str
    timezone: tzinfo


@dataclass(frozen=True, slots=True)
class Normalized:
    points: list[Point]
    skipped_values: int  # numeric items whose value was not a number
    event_time: datetime | None  # UTC


def event_time(cp: CpData, source: Source, received_at: datetime) -> tuple[datetime, bool]:
    """(UTC event time, whether DataTime was usable). DataTime is the device's local time."""
    raw = cp.data_time
    if raw is None:
        return received_at, False
    try:
        local = parse_hj212_time(raw)
        return local.replace(tzinfo=source.timezone).astimezone(received_at.tzinfo), True
    except (CpError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        return received_at, False


def normalize(
    frame: Frame, cp: CpData, source: Source, received_at: datetime, *, backfill: bool
) -> Normalized:
    """Points for a data upload; an empty list for commands that carry no stored data."""
    if frame.cn not in DATA_COMMANDS:
        return Normalized([], 0, None)
    moment, _ = event_time(cp, source, received_at)
    ns = to_ns(moment)
    interval = INTERVAL_BY_CN.get(frame.cn)
    points: list[Point] = []
    skipped = 0
    device_tags = (("enterprise", source.enterprise), ("outlet", source.outlet), ("mn", frame.mn))
    for code, values in cp.items.items():
        if "RS" in values or "RT" in values:
            fields, bad = _facility_fields(values)
            skipped += bad
            if fields:
                facility = (("enterprise", source.enterprise), ("mn", frame.mn), ("facility", code))
                points.append(Point("facility_state", facility, tuple(fields), ns))
            continue
        if interval is None:
            continue
        fields, bad = _emission_fields(values)
        skipped += bad
        if fields:
            fields.append(("backfill", backfill))
            tags = (*device_tags, ("pollutant", code), ("interval", interval))
            points.append(Point("emission", tags, tuple(fields), ns))
    return Normalized(points, skipped, moment)


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number


def _emission_fields(values: dict[str, str]) -> tuple[list[tuple[str, FieldValue]], int]:
    fields: list[tuple[str, FieldValue]] = []
    bad = 0
    for suffix, value in values.items():
        spec = _EMISSION_FIELDS.get(suffix)
        if spec is None:
            continue
        name, numeric = spec
        if numeric:
            try:
                fields.append((name, float(value)))
            except ValueError:
                bad += 1
        elif value:
            fields.append((name, value))
    return fields, bad


def _facility_fields(values: dict[str, str]) -> tuple[list[tuple[str, FieldValue]], int]:
    fields: list[tuple[str, FieldValue]] = []
    bad = 0
    if "RS" in values:
        number = _number(values["RS"])
        if number is None or not number.is_integer():
            bad += 1
        else:
            fields.append(("rs", int(number)))
    if "RT" in values:
        number = _number(values["RT"])
        if number is None:
            bad += 1
        else:
            fields.append(("rt_hours", number))
    return fields, bad
