"""HJ 212 frames to the stored schema (`emission`, `facility_state`, `operating_condition`,
`device_log`). Pure, no I/O.

`check_upload` is what a data upload must pass before anything of it is stored: a DataTime
within the plausible window, numbers of the standard's ``N`` shape (optional minus, digits,
optional decimal part: no ``nan``, ``inf``, ``1e5``, ``1_000``, blanks, nor empty values),
flags of one capital letter. A frame is refused whole rather than stored in part: with
corruption in mind, one value that does not parse makes the others suspect too.

HJ 212-2025 key production operating conditions (工况, `ST=45`, real-time `2011`): each item's
`Rtd` is a number (a process parameter) or a state mark of 1-4 letters (e.g. `St`, `Sr`, `N`),
stored as `operating_condition` points (`value` or `state`), not as pollutants.

Device logs (`device_log_points`): a data logger's power-on time (2081 `RestartTime`) and its
instruments' logs, states and parameters (3020 `<InfoId>-Info`, with `PolId`), each stored as
sent, a number also as `value`: a changed range or slope of an analyser is evidence. Their time
is DataTime when it reads, else the receive time; a log is not refused for its age.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from adapters.hj212.cp import CpData, parse_hj212_time
from adapters.hj212.errors import CpError, ValueShapeError
from adapters.hj212.frame import Frame
from gateway.model import FieldValue, Point, to_ns

INTERVAL_BY_CN = {"2011": "rtd", "2051": "minute", "2061": "hour", "2031": "day"}
DATA_COMMANDS = frozenset({"2011", "2051", "2061", "2031", "2021", "2041"})
LOG_COMMANDS = frozenset({"2081", "3020"})
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
NUMERIC_SUFFIXES = frozenset(
    {s for s, (_, numeric) in _EMISSION_FIELDS.items() if numeric} | {"RS", "RT"}
)
# HJ 212 N type; at most 15 digits on each side, so that every value is a finite float
_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")
# data flags: 2017 N F M S D C T B, 2005's P; other capitals are regional (e.g. J)
_FLAG = re.compile(r"[A-Z]")
_EFLAG = re.compile(r"[A-Za-z0-9]{1,8}")
_STATE_MARK = re.compile(r"[A-Za-z]{1,4}")
OPERATING_ST = "45"  # HJ 212-2025: key production operating conditions


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


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far from the receive time a DataTime may lie."""

    max_past: timedelta
    max_future: timedelta


def number(value: str) -> float | None:
    """The value of an HJ 212 ``N`` number (``-12.5``, ``007``), None for anything else."""
    return float(value) if _NUMBER.fullmatch(value) is not None else None


def event_time(cp: CpData, source: Source, received_at: datetime) -> tuple[datetime, bool]:
    """(UTC event time, whether DataTime was usable). DataTime is the device's local time;
    without a usable one the receive time stands in (`check_upload` refuses such uploads)."""
    raw = cp.data_time
    if raw is None:
        return received_at, False
    try:
        local = parse_hj212_time(raw)
        return local.replace(tzinfo=source.timezone).astimezone(received_at.tzinfo), True
    except (CpError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        return received_at, False


def check_upload(
    cp: CpData,
    source: Source,
    received_at: datetime,
    window: TimeWindow,
    *,
    st: str = "",
    cn: str = "",
) -> datetime:
    """The UTC event time of a data upload that may be stored whole; raises ValueShapeError
    (`bad_time`, `implausible_time`, `bad_value`, `bad_flag`) otherwise. In real-time
    operating conditions (`st` 45, `cn` 2011) an `Rtd` may be a state mark, not a number."""
    marks = st == OPERATING_ST and cn == "2011"
    moment, usable = event_time(cp, source, received_at)
    if not usable:
        raise ValueShapeError("no valid DataTime (yyyyMMddHHmmss[zzz])", reason="bad_time")
    if not received_at - window.max_past <= moment <= received_at + window.max_future:
        raise ValueShapeError(
            f"DataTime {moment:%Y-%m-%dT%H:%M:%SZ} is outside the plausible window of the "
            "receive time",
            reason="implausible_time",
        )
    is_number = _NUMBER.fullmatch
    for code, values in cp.items.items():
        for suffix, value in values.items():
            if suffix == "Rtd" and marks:
                if is_number(value) is None and _STATE_MARK.fullmatch(value) is None:
                    raise ValueShapeError(
                        f"{code}-Rtd is neither a number nor a state mark", reason="bad_value"
                    )
            elif suffix in NUMERIC_SUFFIXES:
                if is_number(value) is None:
                    raise ValueShapeError(f"{code}-{suffix} is not a number", reason="bad_value")
                if suffix == "RS" and not float(value).is_integer():
                    raise ValueShapeError(f"{code}-RS is not an integer", reason="bad_value")
            elif suffix == "Flag":
                if _FLAG.fullmatch(value) is None:
                    raise ValueShapeError(f"{code}-Flag is not a flag letter", reason="bad_flag")
            elif suffix == "EFlag" and _EFLAG.fullmatch(value) is None:
                raise ValueShapeError(f"{code}-EFlag is not 1-8 letters, digits", reason="bad_flag")
    return moment


def normalize(
    frame: Frame, cp: CpData, source: Source, received_at: datetime, *, backfill: bool
) -> Normalized:
    """Points for a data upload; an empty list for commands that carry no stored data.

    Values that are not ``N`` numbers are skipped and counted (`check_upload` refuses such
    uploads before they get here)."""
    if frame.cn not in DATA_COMMANDS:
        return Normalized([], 0, None)
    moment, _ = event_time(cp, source, received_at)
    ns = to_ns(moment)
    interval = INTERVAL_BY_CN.get(frame.cn)
    points: list[Point] = []
    skipped = 0
    device_tags = (("enterprise", source.enterprise), ("outlet", source.outlet), ("mn", frame.mn))
    if frame.st == OPERATING_ST and interval == "rtd":
        points = _operating(cp, device_tags, ns, backfill)
        return Normalized(points, 0, moment)
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


def device_log_points(
    frame: Frame, cp: CpData, source: Source, received_at: datetime
) -> list[Point]:
    """`device_log` points of a 2081 or 3020 upload (see the module's docstring)."""
    moment, _ = event_time(cp, source, received_at)
    ns = to_ns(moment)
    tags = (
        ("enterprise", source.enterprise),
        ("outlet", source.outlet),
        ("mn", frame.mn),
        ("cn", frame.cn),
    )
    entries: list[tuple[str, str]] = []
    if frame.cn == "2081" and cp.params.get("RestartTime"):
        entries.append(("RestartTime", cp.params["RestartTime"]))
    entries += [(code, values["Info"]) for code, values in cp.items.items() if "Info" in values]
    pol_id = cp.params.get("PolId", "")
    points = []
    for code, text in entries:
        fields: list[tuple[str, FieldValue]] = [("text", text)]
        parsed = number(text) if code != "RestartTime" else None
        if parsed is not None:
            fields.append(("value", parsed))
        if code == "RestartTime":
            try:
                restart = parse_hj212_time(text).replace(tzinfo=source.timezone)
                fields.append(("restart_at", restart.astimezone(received_at.tzinfo).isoformat()))
            except (CpError, OverflowError):
                pass  # kept as sent
        where = (("pol_id", pol_id),) if pol_id else ()
        points.append(Point("device_log", (*tags, ("code", code), *where), tuple(fields), ns))
    return points


def _operating(
    cp: CpData, device_tags: tuple[tuple[str, str], ...], ns: int, backfill: bool
) -> list[Point]:
    """`operating_condition` points of an ST=45 upload: a number is a `value`, a mark a
    `state`; `Flag` kept as sent (`check_upload` checked every value)."""
    points = []
    for code, values in cp.items.items():
        fields: list[tuple[str, FieldValue]] = []
        rtd = values.get("Rtd")
        if rtd is not None:
            parsed = number(rtd)
            fields.append(("value", parsed) if parsed is not None else ("state", rtd))
        if values.get("Flag"):
            fields.append(("flag", values["Flag"]))
        if fields:
            fields.append(("backfill", backfill))
            tags = (*device_tags, ("code", code))
            points.append(Point("operating_condition", tags, tuple(fields), ns))
    return points


def _emission_fields(values: dict[str, str]) -> tuple[list[tuple[str, FieldValue]], int]:
    fields: list[tuple[str, FieldValue]] = []
    bad = 0
    for suffix, value in values.items():
        spec = _EMISSION_FIELDS.get(suffix)
        if spec is None:
            continue
        name, numeric = spec
        if numeric:
            parsed = number(value)
            if parsed is None:
                bad += 1
            else:
                fields.append((name, parsed))
        elif value:
            fields.append((name, value))
    return fields, bad


def _facility_fields(values: dict[str, str]) -> tuple[list[tuple[str, FieldValue]], int]:
    fields: list[tuple[str, FieldValue]] = []
    bad = 0
    if "RS" in values:
        parsed = number(values["RS"])
        if parsed is None or not parsed.is_integer():
            bad += 1
        else:
            fields.append(("rs", int(parsed)))
    if "RT" in values:
        parsed = number(values["RT"])
        if parsed is None:
            bad += 1
        else:
            fields.append(("rt_hours", parsed))
    return fields, bad
