"""Helpers the registry's sections share: Beijing moments, time zones."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)

BEIJING = ZoneInfo("Asia/Shanghai")


def _beijing_midnight(value: Any) -> Any:
    """A TOML date: Beijing midnight of that day."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    return value


def _in_beijing(value: datetime) -> datetime:
    """Without an offset, Beijing time."""
    return value.replace(tzinfo=BEIJING) if value.tzinfo is None else value


# a moment as the registry writes it: a date (Beijing midnight) or a time, with its offset or
# in Beijing time
Moment = Annotated[
    datetime,
    BeforeValidator(_beijing_midnight),
    AfterValidator(_in_beijing),
    Field(description="a date (Beijing midnight) or a time (with its offset, else Beijing)"),
]


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
        ) from None
    return value


_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@functools.cache  # the offline rule reads every gate's windows at every tick
def quiet_window(text: str) -> tuple[int, int]:
    """("22:00-06:00") -> (start, end) in minutes of the day; an end before the start wraps
    past midnight. ValueError when malformed or empty (start = end)."""
    found = _QUIET.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = map(int, found.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{text!r} is empty")
    return start, end
