"""Event times and dates of MQTT payloads (contracts.md 1.2). Pure, no I/O."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from .errors import PayloadError, shown

# Beijing time: Asia/Shanghai has been UTC+8 without DST since 1991, so a fixed offset is exact
# for every accepted instant and needs no tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EARLIEST_MS = (EARLIEST - _EPOCH) // _MS
_LATEST_MS = (LATEST - _EPOCH) // _MS
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII | re.IGNORECASE,
)
_DATE = re.compile(r"(\d{4})([-/]?)(\d{2})\2(\d{2})", re.ASCII)


def parse_time(value: object) -> datetime:
    """UTC-aware instant of an event time.

    Accepts ISO 8601 `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z|±HH[:MM]]` (no offset = Beijing
    time) and integer epoch milliseconds. Rejects floats, digit-only strings (ambiguous between
    epoch ms and `yyyyMMddHHmmss`) and instants outside 2000-01-01 .. 2099-12-31 UTC.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadError(
            "schema", f"time must be an ISO 8601 string or integer epoch ms, got {shown(value)}"
        )
    if isinstance(value, int):
        if not _EARLIEST_MS <= value < _LATEST_MS:
            raise PayloadError(
                "value", f"epoch ms {shown(value)} is outside 2000..2099 (seconds instead of ms?)"
            )
        return _EPOCH + value * _MS
    moment = _iso(value)
    if not EARLIEST <= moment < LATEST:
        raise PayloadError("value", f"time {shown(value)} is outside 2000..2099")
    return moment


def _iso(text: str) -> datetime:
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise PayloadError(
            "value", f"time {shown(text)} is not ISO 8601 like 2026-01-05T08:00:00+08:00"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((fraction or "").ljust(6, "0")[:6]),
            tzinfo=BEIJING if offset is None else _offset(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise PayloadError("value", f"time {shown(text)}: {exc}") from None


def _offset(text: str) -> timezone:
    if text in ("Z", "z"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 14 or minutes > 59:
        raise ValueError(f"UTC offset {text} out of range")
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_date(value: object) -> date:
    """A calendar date `yyyymmdd` (2020 ledger guide), `yyyy-mm-dd` or `yyyy/mm/dd`, 1950..2099."""
    if not isinstance(value, str):
        raise PayloadError("schema", f"date must be a string, got {shown(value)}")
    match = _DATE.fullmatch(value.strip())
    if match is None:
        raise PayloadError("value", f"date {shown(value)} is not yyyymmdd or yyyy-mm-dd")
    year, _, month, day = match.groups()
    try:
        result = date(int(year), int(month), int(day))
    except ValueError as exc:
        raise PayloadError("value", f"date {shown(value)}: {exc}") from None
    if not 1950 <= result.year <= 2099:
        raise PayloadError("value", f"date {shown(value)} is outside 1950..2099")
    return result
