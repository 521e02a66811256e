"""Parsing of the CP data area: ``DataTime=...;a21026-Rtd=1.2,a21026-Flag=N;SB1-RS=1``.

Items are ``key=value``; ``,`` joins items of one subject and ``;`` separates subjects, but
devices mix them, so both are treated as item separators. ``xxx-Info=//...//`` is one opaque
value even if it holds separators. Keys with a ``-`` are ``code-suffix`` items; others are
parameters (DataTime, BeginTime, QnRtn, bare vendor keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .errors import CpError

DATA_SUFFIXES = frozenset(
    {"Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "Flag", "EFlag"}
)


@dataclass(slots=True)
class CpData:
    """A parsed CP data area. Values are kept as sent; nothing is dropped."""

    params: dict[str, str] = field(default_factory=dict)
    items: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def data_time(self) -> str | None:
        return self.params.get("DataTime")


def parse_cp(text: str) -> CpData:
    """Parse a plaintext CP data area (the text between ``CP=&&`` and the closing ``&&``)."""
    if "//" not in text:
        return _parse_simple(text)
    out = CpData()
    pos, end = 0, len(text)
    while pos < end:
        ch = text[pos]
        if ch in ";, \t\r\n":
            pos += 1
            continue
        eq = text.find("=", pos)
        sep = _next_separator(text, pos)
        if eq < 0 or (0 <= sep < eq):
            # a bare key without a value
            stop = end if sep < 0 else sep
            key = text[pos:stop].strip()
            if key:
                out.params[key] = ""
            pos = stop + 1
            continue
        key = text[pos:eq].strip()
        if not key:
            raise CpError(f"empty key at offset {pos}")
        vstart = eq + 1
        while vstart < end and text[vstart] == " ":
            vstart += 1
        if text.startswith("//", vstart):
            close = text.find("//", vstart + 2)
            if close < 0:
                raise CpError(f"unclosed //...// text for {key}")
            value = text[vstart + 2 : close]
            pos = close + 2
        else:
            stop = _next_separator(text, vstart)
            stop = end if stop < 0 else stop
            value = text[vstart:stop].strip()
            pos = stop + 1
        code, dash, suffix = key.partition("-")
        if dash and code and suffix:
            out.items.setdefault(code, {})[suffix] = value
        else:
            out.params[key] = value
    return out


def _parse_simple(text: str) -> CpData:
    """The common case: no ``//...//`` text, so separators can be split on directly."""
    params: dict[str, str] = {}
    items: dict[str, dict[str, str]] = {}
    for part in text.replace(",", ";").split(";"):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not key:
            if eq:
                raise CpError(f"empty key in {part!r}")
            continue
        value = value.strip()
        code, dash, suffix = key.partition("-")
        if dash and code and suffix:
            group = items.get(code)
            if group is None:
                group = items[code] = {}
            group[suffix] = value
        else:
            params[key] = value
    return CpData(params, items)


def _next_separator(text: str, start: int) -> int:
    semi = text.find(";", start)
    comma = text.find(",", start)
    if semi < 0:
        return comma
    if comma < 0:
        return semi
    return min(semi, comma)


def parse_hj212_time(value: str) -> datetime:
    """A naive datetime from ``yyyyMMddHHmmss`` (optionally with 3 digits of milliseconds)."""
    digits = value.strip()
    if not digits.isdigit() or len(digits) not in (14, 17) or not digits.isascii():
        raise CpError(f"time {value!r} is not yyyyMMddHHmmss[zzz]")
    try:
        return datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            int(digits[14:17] or 0) * 1000,
        )
    except ValueError as exc:
        raise CpError(f"time {value!r}: {exc}") from None


def format_hj212_time(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")
