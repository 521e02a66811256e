r"""InfluxDB line protocol encoding of `Point`s (shared by InfluxDB 1.x, 2.x and 3.x).

InfluxDB's rules, as InfluxDB 1.x applies them: in measurements, tag keys, tag values and
field keys a comma, ``=`` and a blank are escaped with a backslash, but a backslash itself
cannot be (a name ending in one is refused, one before an escaped character changes the
name), and line breaks are not supported; tag values are never empty; ``time`` is no key; in
string fields ``"`` and ``\`` are escaped, line breaks are not supported; times lie in
-9223372036854775806 .. 9223372036854775806 ns (1677-09-21 .. 2262-04-11). `unstorable` says
whether a point's line would be refused or changed, so an adapter can refuse the data before
acknowledging it. `encode_point` writes what it is given: a line break in a string field as
the two characters ``\n`` (or ``\r``), a non-finite float not at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from gateway.model import FieldValue, Point

MIN_TIME_NS = -9_223_372_036_854_775_806
MAX_TIME_NS = 9_223_372_036_854_775_806
MAX_STRING_BYTES = 65_536
_RESERVED_KEYS = frozenset({"time", "_field", "_measurement"})
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters, backslash
_INT64 = (-(2**63), 2**63 - 1)

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r"})


def _field_value(value: FieldValue) -> str | None:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            return None  # InfluxDB has no NaN/Inf; the field is left out
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return f"{value}i"
    if not isinstance(value, str):
        raise TypeError(f"unsupported field value {value!r}")
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


_series_cache: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_key_cache: dict[str, str] = {}
_CACHE_LIMIT = 200_000


def _series(point: Point) -> str:
    """Measurement and tags, escaped; cached since the same series repeats every interval."""
    cache_key = (point.measurement, point.tags)
    text = _series_cache.get(cache_key)
    if text is None:
        if len(_series_cache) >= _CACHE_LIMIT:
            _series_cache.clear()
        tags = "".join(
            f",{k.translate(_KEY_ESCAPES)}={v.translate(_KEY_ESCAPES)}" for k, v in point.tags if v
        )
        text = _series_cache[cache_key] = point.measurement.translate(_MEASUREMENT_ESCAPES) + tags
    return text


def _key(name: str) -> str:
    """``name=`` with the name escaped (cached: field names repeat)."""
    text = _key_cache.get(name)
    if text is None:
        if len(_key_cache) >= _CACHE_LIMIT:
            _key_cache.clear()
        text = _key_cache[name] = name.translate(_KEY_ESCAPES) + "="
    return text


def encode_point(point: Point) -> str | None:
    """One line of line protocol, or None when the point has no storable field."""
    fields = []
    for key, value in point.fields:
        if type(value) is float and math.isfinite(value):
            fields.append(_key(key) + repr(value))
            continue
        text = _field_value(value)
        if text is not None:
            fields.append(_key(key) + text)
    if not fields:
        return None
    return f"{_series(point)} {','.join(fields)} {point.event_time_ns}"


def encode_points(points: Iterable[Point]) -> bytes:
    """Newline-terminated lines for all storable points."""
    lines = [line for line in map(encode_point, points) if line is not None]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


_problems: dict[tuple[str, tuple[tuple[str, str], ...]], str | None] = {}
_good_field_keys: set[str] = set()
_UNSEEN = "unseen"


def unstorable(point: Point) -> str | None:
    """Why InfluxDB would refuse `point`'s line or store something else, or None."""
    if not MIN_TIME_NS <= point.event_time_ns <= MAX_TIME_NS:
        return "time outside InfluxDB's range (1677-09-21 .. 2262-04-11)"
    cache_key = (point.measurement, point.tags)
    problem = _problems.get(cache_key, _UNSEEN)
    if problem is _UNSEEN:
        if len(_problems) >= _CACHE_LIMIT:
            _problems.clear()
        problem = _problems[cache_key] = _series_problem(point)
    if problem is not None:
        return problem
    if not point.fields:
        return "no field"
    for name, value in point.fields:
        if name not in _good_field_keys:
            problem = _name_problem(name, "a field key")
            if problem is not None:
                return problem
            if len(_good_field_keys) >= _CACHE_LIMIT:
                _good_field_keys.clear()
            _good_field_keys.add(name)
        kind = type(value)
        if kind is float:
            if value - value != 0:  # type: ignore[operator]  # NaN or infinite
                return f"field {name} is not a finite number"
        elif kind is str:
            problem = _string_problem(name, value)  # type: ignore[arg-type]
            if problem is not None:
                return problem
        elif kind is int:
            if not _INT64[0] <= value <= _INT64[1]:  # type: ignore[operator]
                return f"field {name} is outside the 64-bit integers"
        elif kind is not bool:
            return f"field {name} is not a float, integer, boolean or string"
    return None


def _string_problem(name: str, value: str) -> str | None:
    if "\n" in value or "\r" in value:
        return f"string field {name} holds a line break"
    if len(value) > MAX_STRING_BYTES // 4 and len(value.encode()) > MAX_STRING_BYTES:
        return f"string field {name} is longer than 64 KiB"
    return None


def _series_problem(point: Point) -> str | None:
    problem = _name_problem(point.measurement, "the measurement")
    if problem is not None:
        return problem
    for key, value in point.tags:
        problem = _name_problem(key, "a tag key")
        if problem is not None:
            return problem
        if value and _BAD_NAME.search(value) is not None:
            return f"tag {key} holds a backslash or a control character"
    return None


def _name_problem(name: str, what: str) -> str | None:
    if not name:
        return f"{what} is empty"
    if name in _RESERVED_KEYS:
        return f"{what} is the reserved {name}"
    if _BAD_NAME.search(name) is not None:
        return f"{what} holds a backslash or a control character"
    return None
