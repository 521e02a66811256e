"""MQTT payload values to the contract's vocabularies (contracts.md 1.2). Pure, no I/O.

Every function takes the decoded JSON value and returns the canonical form or raises
`PayloadError`: `schema` for a value of the wrong JSON type, `value` for one outside the vocabulary.
Spellings are compared after NFKC (full-width and Roman-numeral characters become ASCII),
case folding and removal of spaces, `-`, `_` and `.`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, TypeVar

from gateway.plates import PlateError, compact, valid_plate

from .errors import PayloadError, shown
from .times import parse_date, parse_time

StageCode = Literal["0", "1", "2", "3", "4", "5", "6", "d", "x"]
Fuel = Literal["diesel", "gas", "gasoline", "electric", "hybrid", "hydrogen", "other"]
VehicleClass = Literal["heavy", "medium", "light", "special", "machinery"]
Direction = Literal["in", "out"]
PlateColor = Literal["blue", "yellow", "green", "yellow-green", "white", "black"]

__all__ = [
    "Direction",
    "Fuel",
    "PlateColor",
    "StageCode",
    "VehicleClass",
    "direction",
    "emission_stage",
    "fuel",
    "parse_date",
    "parse_time",
    "plate",
    "plate_color",
    "registration_code",
    "text",
    "vehicle_class",
    "vin",
]

T = TypeVar("T")


def _key(raw: str) -> str:
    """The comparison form of a vocabulary spelling."""
    folded = unicodedata.normalize("NFKC", raw).casefold()
    return re.sub(r"[\s\-_.]+", "", folded)


def _lookup(name: str, raw: object, table: dict[str, T]) -> T:
    if not isinstance(raw, str):
        raise PayloadError("schema", f"{name} must be a string, got {shown(raw)}")
    found = table.get(_key(raw))
    if found is None:
        raise PayloadError("value", f"{name} {shown(raw)} is not a known spelling")
    return found


def _table(spellings: dict[T, tuple[str, ...]]) -> dict[str, T]:
    return {_key(spelling): code for code, words in spellings.items() for spelling in words}


# --------------------------------------------------------------------------------- vocabularies

_NUMERALS: dict[str, StageCode] = {
    **dict.fromkeys(("0", "零"), "0"),
    **dict.fromkeys(("1", "一", "i"), "1"),
    **dict.fromkeys(("2", "二", "ii"), "2"),
    **dict.fromkeys(("3", "三", "iii"), "3"),
    **dict.fromkeys(("4", "四", "iv"), "4"),
    **dict.fromkeys(("5", "五", "v"), "5"),
    **dict.fromkeys(("6", "六", "vi"), "6"),
}
_STAGE = re.compile(
    r"(?:国|china)?([0-6零一二三四五六]|iii|ii|iv|vi|i|v)([ab]?)(?:阶段|标准|排放标准)?"
)
_ELECTRIC = frozenset(
    _key(s) for s in ("d", "electric", "EV", "BEV", "新能源", "纯电", "纯电动", "电动")
)
_NO_STAGE = frozenset(_key(s) for s in ("", "x", "none", "无", "无排放阶段"))


def emission_stage(raw: object) -> StageCode:
    """The ledger code `0`..`6` (国0..国6), `d` (electric) or `x` (no emission stage).

    Accepts `5`, `国五`, `国5`, `国V`, `V`, `China 5`, `China V`, `国五标准`, 6a/6b (`国六b`, `VIb`:
    both 国6 sub-stages are `6`), the electric and "none" words. Euro stages are refused: the
    ledger records China stages and the notes give no equivalence.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 0 <= raw <= 6:
            raise PayloadError("value", f"emission_stage {shown(raw)} is not 0..6")
        return _NUMERALS[str(raw)]
    if not isinstance(raw, str):
        raise PayloadError("schema", f"emission_stage must be a string or 0..6, got {shown(raw)}")
    key = _key(raw)
    if key in _ELECTRIC:
        return "d"
    if key in _NO_STAGE:
        return "x"
    if key.startswith(("euro", "欧")):
        raise PayloadError(
            "value", f"emission_stage {shown(raw)} is a Euro stage, not a China stage"
        )
    match = _STAGE.fullmatch(key)
    if match is None or (match[2] and _NUMERALS[match[1]] != "6"):
        raise PayloadError("value", f"emission_stage {shown(raw)} is not a known spelling")
    return _NUMERALS[match[1]]


_FUELS: dict[str, Fuel] = _table(
    {
        "diesel": ("diesel", "柴油", "柴油车"),
        "gas": ("gas", "natural gas", "天然气", "燃气", "CNG", "LNG", "NG", "压缩天然气",
                "液化天然气", "LPG", "液化石油气"),
        "gasoline": ("gasoline", "petrol", "汽油"),
        "electric": ("electric", "EV", "BEV", "电", "电动", "纯电", "纯电动", "新能源"),
        "hybrid": ("hybrid", "HEV", "PHEV", "混合动力", "混动", "油电混合", "插电",
                   "插电式混合动力", "插混", "增程", "增程式"),
        "hydrogen": ("hydrogen", "FCEV", "fuel cell", "氢", "氢能", "氢燃料", "燃料电池",
                     "氢燃料电池"),
        "other": ("other", "其他", "其它", "燃油", "甲醇", "methanol", "乙醇", "双燃料"),
    }
)  # fmt: skip


def fuel(raw: object) -> Fuel:
    """`diesel`, `gas` (CNG/LNG/LPG), `gasoline`, `electric`, `hybrid`, `hydrogen` or `other`.

    The generic 燃油 ("fuel oil": diesel or gasoline) is `other`: guessing diesel would decide
    a transport ban from a vendor's vagueness.
    """
    return _lookup("fuel", raw, _FUELS)


_CLASS_WORDS: dict[str, VehicleClass] = _table(
    {
        "heavy": ("heavy", "heavy truck", "heavy duty", "HDV", "N3", "重卡"),
        "medium": ("medium", "medium truck", "N2", "中卡"),
        "light": ("light", "light truck", "LDV", "N1", "轻卡", "微卡"),
        "special": ("special", "special vehicle"),
        "machinery": ("machinery", "NRMM", "non-road", "non-road mobile machinery",
                      "叉车", "装载机", "挖掘机"),
    }
)  # fmt: skip
# Chinese descriptions are matched by marker, first marker wins: 重型专项作业车 is `special`.
_CLASS_MARKERS: tuple[tuple[str, VehicleClass], ...] = (
    ("非道路", "machinery"),
    ("机械", "machinery"),
    ("专项作业", "special"),
    ("特种", "special"),
    ("重型", "heavy"),
    ("中型", "medium"),
    ("轻型", "light"),
    ("微型", "light"),
)


def vehicle_class(raw: object) -> VehicleClass:
    """`heavy`, `medium`, `light`, `special` or `machinery` from words, GB/T 15089 N1..N3 or
    Chinese descriptions (重型半挂牵引车, 专项作业车, 非道路移动机械...)."""
    if isinstance(raw, str):
        key = _key(raw)
        for marker, code in _CLASS_MARKERS:
            if marker in key:
                return code
    return _lookup("vehicle_class", raw, _CLASS_WORDS)


_DIRECTIONS: dict[str, Direction] = _table(
    {
        "in": ("in", "entry", "enter", "entrance", "inbound", "进", "进厂", "进场", "入",
               "入厂", "入场", "驶入"),
        "out": ("out", "exit", "leave", "outbound", "出", "出厂", "出场", "离厂", "驶出"),
    }
)  # fmt: skip


def direction(raw: object) -> Direction:
    """`in` or `out`. Numeric codes are refused: vendors disagree on which of 0/1 is entry."""
    return _lookup("direction", raw, _DIRECTIONS)


_COLORS: dict[str, PlateColor] = _table(
    {
        "blue": ("blue", "蓝", "蓝色", "蓝牌"),
        "yellow": ("yellow", "黄", "黄色", "黄牌"),
        "green": ("green", "绿", "绿色", "绿牌", "渐变绿", "渐变绿色"),
        "yellow-green": ("yellow-green", "黄绿", "黄绿色", "黄绿双拼", "黄绿双拼色", "黄绿牌"),
        "white": ("white", "白", "白色", "白牌"),
        "black": ("black", "黑", "黑色", "黑牌"),
    }
)  # fmt: skip
_NO_COLOR = frozenset(_key(s) for s in ("", "unknown", "未知", "未识别"))


def plate_color(raw: object) -> PlateColor | None:
    """A colour word (blue, yellow, green, yellow-green, white, black), None when unknown.

    Numeric codes are refused: they differ between vendors (power-gate-notes 2.2).
    """
    if isinstance(raw, str) and _key(raw) in _NO_COLOR:
        return None
    return _lookup("plate_color", raw, _COLORS)


# ------------------------------------------------------------------------ identifiers and text

_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


def plate(raw: object) -> str:
    """A plate in the form every comparison uses (`gateway.plates.valid_plate`): without spaces,
    dots, hyphens or middle dots, latin letters upper-cased, 2..10 characters of A-Z, 0-9 and
    Chinese characters (the ledger's char(10))."""
    if not isinstance(raw, str):
        raise PayloadError("schema", f"plate must be a string, got {shown(raw)}")
    try:
        return valid_plate(raw)
    except PlateError as exc:
        raise PayloadError("value", str(exc)) from None


def vin(raw: object) -> str | None:
    """A 17-character VIN (A-Z without I, O, Q, and 0-9), upper-cased; None when empty."""
    if not isinstance(raw, str):
        raise PayloadError("schema", f"vin must be a string, got {shown(raw)}")
    text = compact(raw)
    if not text:
        return None
    if _VIN.fullmatch(text) is None:
        raise PayloadError("value", f"vin {shown(raw)} is not 17 of A-Z (no I, O, Q) and 0-9")
    return text


_REGISTRATION = re.compile(r"[0-9A-Z\u4e00-\u9fff]{4,32}")


def registration_code(raw: object) -> str | None:
    """Non-road mobile machinery's registration code (登记编码, as the local ledger issues it:
    冀A·F12345, 京NRM-00001...) compacted like a plate: 4..32 of A-Z, 0-9 and Chinese
    characters; None when empty (the gate sent the key but the machine has no code)."""
    if not isinstance(raw, str):
        raise PayloadError("schema", f"registration_code must be a string, got {shown(raw)}")
    code = compact(raw)
    if not code:
        return None
    if _REGISTRATION.fullmatch(code) is None:
        raise PayloadError(
            "value", f"registration_code {shown(raw)} is not 4..32 of A-Z, 0-9 and Chinese"
        )
    return code


def text(name: str, raw: object, max_chars: int) -> str | None:
    """A stripped free-text value of at most `max_chars` characters; None when empty."""
    if not isinstance(raw, str):
        raise PayloadError("schema", f"{name} must be a string, got {shown(raw)}")
    stripped = raw.strip()
    if len(stripped) > max_chars:
        raise PayloadError("value", f"{name} has {len(stripped)} characters, at most {max_chars}")
    if any(unicodedata.category(ch) == "Cc" for ch in stripped):
        raise PayloadError("value", f"{name} contains control characters")
    return stripped or None
