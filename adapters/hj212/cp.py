"""Parsing of the CP data area: ``DataTime=...;a21026-Rtd=1.2,a21026-Flag=N;SB1-RS=1``.

Items are ``key=value``; ``,`` joins items of one subject and ``;`` separates subjects, but
devices mix them, so both are treated as item separators. ``xxx-Info=//...//`` is one opaque
value even if it holds separators. Keys with a ``-`` are ``code-suffix`` items; others are
parameters (DataTime, BeginTime, QnRtn, bare vendor keys).

`parse_cp(text, strict=True)` is for data uploads, whose every byte is to be trusted: every
item ``key=value`` (one trailing separator allowed), keys of letters, digits and ``_``
(``code-Suffix`` or a parameter), values without control characters or surrounding blanks,
no key twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

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


_SEPARATORS = re.compile(r"[;,]")
_PARAM_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_ITEM_KEY = re.compile(r"([A-Za-z0-9_]{1,32})-([A-Za-z][A-Za-z0-9_]{0,31})")
_VALUE = re.compile(r"(?:[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?)?")
# a whole strict area without //...// texts, checked in one pass
_KEY_TEXT = r"(?:[A-Za-z0-9_]{1,32}-[A-Za-z][A-Za-z0-9_]{0,31}|[A-Za-z][A-Za-z0-9_]{0,63})"
_VALUE_TEXT = r"(?:[^\x00-\x20\x7f;,](?:[^\x00-\x1f\x7f;,]*[^\x00-\x20\x7f;,])?)?"
_ITEM_TEXT = _KEY_TEXT + "=" + _VALUE_TEXT
_STRICT_AREA = re.compile(f"(?:{_ITEM_TEXT}(?:[;,]{_ITEM_TEXT})*[;,]?)?")


def parse_cp(text: str, *, strict: bool = False) -> CpData:
    """Parse a plaintext CP data area (the text between ``CP=&&`` and the closing ``&&``).

    Tolerant by default (blanks stripped, bare keys kept as empty parameters); `strict`
    raises CpError for anything but well-formed items (see the module's docstring).
    """
    if strict:
        return _parse_strict(text)
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


def _parse_strict(text: str) -> CpData:
    if "//" not in text and _STRICT_AREA.fullmatch(text) is not None:
        out = _parse_simple(text)
        items = text.count(";") + text.count(",") + 1 - text.endswith((";", ","))
        if text and items != len(out.params) + sum(map(len, out.items.values())):
            raise CpError("a data item repeats a key")
        return out
    out = CpData()
    if "//" not in text:  # not well-formed: find the first item at fault
        parts = _SEPARATORS.split(text)
        if not parts[-1]:
            parts.pop()  # one trailing separator
        for number, part in enumerate(parts, 1):
            key, eq, value = part.partition("=")
            if not eq:
                raise CpError(f"data item {number} is not key=value")
            _add_strict(out, key, value, number, text=False)
        raise CpError("the data area is not well-formed")
    pos, end, number = 0, len(text), 0
    while pos < end:
        number += 1
        eq = text.find("=", pos)
        sep = _next_separator(text, pos)
        if eq < 0 or 0 <= sep < eq:
            raise CpError(f"data item {number} is not key=value")
        key = text[pos:eq]
        if text.startswith("//", eq + 1):
            close = text.find("//", eq + 3)
            if close < 0:
                raise CpError(f"data item {number}: unclosed //...// text")
            value, stop, quoted = text[eq + 3 : close], close + 2, True
            if stop < end and text[stop] not in ";,":
                raise CpError(f"data item {number}: no separator after its //...// text")
        else:
            stop = end if sep < 0 else sep
            value, quoted = text[eq + 1 : stop], False
        _add_strict(out, key, value, number, text=quoted)
        pos = stop + 1
    return out


def _add_strict(out: CpData, key: str, value: str, number: int, *, text: bool) -> None:
    if not text and _VALUE.fullmatch(value) is None:
        raise CpError(f"data item {number}: value with blanks around it or control characters")
    item = _ITEM_KEY.fullmatch(key)
    if item is not None:
        group = out.items.setdefault(item.group(1), {})
        if item.group(2) in group:
            raise CpError(f"data item {number} repeats {key}")
        group[item.group(2)] = value
    elif _PARAM_KEY.fullmatch(key) is not None:
        if key in out.params:
            raise CpError(f"data item {number} repeats {key}")
        out.params[key] = value
    else:
        raise CpError(f"data item {number}: key is not code-Suffix or a parameter name")


def _next_separator(text: str, start: int) -> int:
    semi = text.find(";", start)
    comma = text.find(",", start)
    if semi < 0:
        return comma
    if comma < 0:
        return semi
    return min(semi, comma)


@lru_cache(maxsize=4096)  # a frame's QN and DataTime are read more than once
def parse_hj212_time(value: str) -> datetime:
    """A naive datetime from ``yyyyMMddHHmmss`` (optionally with 3 digits of milliseconds)."""
    digits = value.strip()
    if not digits.isdigit() or len(digits) not in (14, 17) or not digits.isascii():
        raise CpError("a time is not yyyyMMddHHmmss[zzz]")
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
        raise CpError(f"a time is not a date: {exc}") from None


def format_hj212_time(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")
