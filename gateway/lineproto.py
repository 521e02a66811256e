"""InfluxDB line protocol encoding of `Point`s (shared by InfluxDB 1.x, 2.x and 3.x)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .model import FieldValue, Point

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r"})


def _field_value(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # InfluxDB has no NaN/Inf; the field is left out
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def encode_point(point: Point) -> str | None:
    """One line of line protocol, or None when the point has no storable field."""
    fields = []
    for key, value in point.fields:
        text = _field_value(value)
        if text is not None:
            fields.append(f"{key.translate(_KEY_ESCAPES)}={text}")
    if not fields:
        return None
    tags = "".join(
        f",{k.translate(_KEY_ESCAPES)}={v.translate(_KEY_ESCAPES)}" for k, v in point.tags if v
    )
    name = point.measurement.translate(_MEASUREMENT_ESCAPES)
    return f"{name}{tags} {','.join(fields)} {point.event_time_ns}"


def encode_points(points: Iterable[Point]) -> bytes:
    """Newline-terminated lines for all storable points."""
    lines = [line for line in map(encode_point, points) if line is not None]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
