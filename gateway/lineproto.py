"""InfluxDB line protocol encoding of `Point`s (shared by InfluxDB 1.x, 2.x and 3.x)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .model import FieldValue, Point

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
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
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
