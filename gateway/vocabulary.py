"""HJ 212 factor codes: one vocabulary for every protocol version. Pure data, no I/O.

HJ 212-2017 and -2025 use the 6-character codes of HJ 524 / HJ 525 (`a21026`, `w01018`);
HJ/T 212-2005 loggers send the older codes (`02` for SO2, `S01` for O2, `B02` for flue-gas
flow). Rules, the series explainer and the page speak the 2017 code (`canonical`); InfluxDB
keeps the code as the device sent it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    """One factor: its 2017 code, the 2005 code it replaced (if any), names and unit."""

    code: str
    code_2005: str | None
    name_zh: str
    name_en: str
    unit: str


O2 = "a19001"
GAS_FLOW = "a00000"
WATER_FLOW = "w00000"
FLOWS = frozenset({GAS_FLOW, WATER_FLOW})

# (2017 code, 2005 code or "", Chinese name, English name, concentration unit)
_TABLE: tuple[tuple[str, str, str, str, str], ...] = (
    # wastewater (HJ 212-2017 Table B.1)
    ("w00000", "B01", "污水流量", "wastewater flow", "L/s"),
    ("w01001", "001", "pH值", "pH", ""),
    ("w01002", "002", "色度", "colour", "倍"),
    ("w01009", "", "溶解氧", "dissolved oxygen", "mg/L"),
    ("w01010", "", "水温", "water temperature", "℃"),
    ("w01012", "003", "悬浮物", "suspended solids", "mg/L"),
    ("w01014", "", "电导率", "conductivity", "μS/cm"),
    ("w01017", "010", "五日生化需氧量", "BOD5", "mg/L"),
    ("w01018", "011", "化学需氧量", "COD", "mg/L"),
    ("w01019", "", "高锰酸盐指数", "permanganate index", "mg/L"),
    ("w01020", "015", "总有机碳", "total organic carbon", "mg/L"),
    ("w20111", "020", "总汞", "total mercury", "μg/L"),
    ("w20115", "022", "总镉", "total cadmium", "μg/L"),
    ("w20116", "023", "总铬", "total chromium", "mg/L"),
    ("w20117", "024", "六价铬", "hexavalent chromium", "μg/L"),
    ("w20119", "026", "总砷", "total arsenic", "μg/L"),
    ("w20120", "027", "总铅", "total lead", "μg/L"),
    ("w20121", "028", "总镍", "total nickel", "mg/L"),
    ("w20122", "029", "总铜", "total copper", "mg/L"),
    ("w20123", "030", "总锌", "total zinc", "mg/L"),
    ("w21001", "065", "总氮", "total nitrogen", "mg/L"),
    ("w21003", "060", "氨氮", "ammonia nitrogen", "mg/L"),
    ("w21011", "101", "总磷", "total phosphorus", "mg/L"),
    ("w21016", "070", "氰化物", "cyanide", "mg/L"),
    ("w21017", "072", "氟化物", "fluoride", "mg/L"),
    ("w21019", "071", "硫化物", "sulphide", "mg/L"),
    ("w22001", "080", "石油类", "petroleum oils", "mg/L"),
    ("w23002", "110", "挥发酚", "volatile phenol", "mg/L"),
    # flue gas (HJ 212-2017 Table B.2)
    ("a00000", "B02", "废气流量", "flue-gas flow", "m³/s"),
    ("a01011", "S02", "烟气流速", "flue-gas velocity", "m/s"),
    ("a01012", "S03", "烟气温度", "flue-gas temperature", "℃"),
    ("a01013", "S08", "烟气压力", "flue-gas pressure", "kPa"),
    ("a01014", "S05", "烟气湿度", "flue-gas humidity", "%"),
    ("a01015", "S06", "制冷温度", "cooler temperature", "℃"),
    ("a01016", "S07", "烟道截面积", "duct cross-section", "m²"),
    ("a01017", "S04", "烟气动压", "flue-gas dynamic pressure", "kPa"),
    ("a19001", "S01", "氧气含量", "oxygen", "%"),
    ("a21026", "02", "二氧化硫", "sulphur dioxide", "mg/m³"),
    ("a21002", "03", "氮氧化物", "nitrogen oxides", "mg/m³"),
    ("a21003", "", "一氧化氮", "nitric oxide", "mg/m³"),
    ("a21004", "", "二氧化氮", "nitrogen dioxide", "mg/m³"),
    ("a21005", "04", "一氧化碳", "carbon monoxide", "mg/m³"),
    ("a21028", "05", "硫化氢", "hydrogen sulphide", "mg/m³"),
    ("a21018", "06", "氟化物", "fluoride", "mg/m³"),
    ("a21024", "08", "氯化氢", "hydrogen chloride", "mg/m³"),
    ("a21001", "10", "氨", "ammonia", "mg/m³"),
    ("a34013", "01", "颗粒物", "particulates", "mg/m³"),
    ("a24087", "25", "碳氢化合物", "hydrocarbons", "mg/m³"),
    ("a24088", "", "非甲烷总烃", "non-methane hydrocarbons", "mg/m³"),
    ("a05002", "", "甲烷", "methane", "mg/m³"),
    ("a25002", "", "苯", "benzene", "mg/m³"),
    ("a25003", "17", "甲苯", "toluene", "mg/m³"),
    ("a25005", "18", "二甲苯", "xylene", "mg/m³"),
)

CODES: dict[str, Code] = {
    row[0]: Code(row[0], row[1] or None, row[2], row[3], row[4]) for row in _TABLE
}
_FROM_2005: dict[str, str] = {c.code_2005: c.code for c in CODES.values() if c.code_2005}


def canonical(code: str, version: str | None = None) -> str:
    """The 2017 code of a factor code as a device of protocol `version` sent it.

    `version` "2005" maps the 2005 codes; "2017" and "2025" keep the code. Unknown (None),
    a code that only the 2005 table has is taken as a 2005 code (the two tables share none).
    """
    if version in ("2017", "2025"):
        return code
    return _FROM_2005.get(code, code)


def describe(code: str, version: str | None = None) -> Code | None:
    """The factor a code names, or None when the vocabulary does not know it."""
    return CODES.get(canonical(code, version))


def spellings(code: str) -> tuple[str, ...]:
    """Every code a device may send for the factor `code` (2017 code first, then 2005)."""
    known = CODES.get(canonical(code))
    if known is None:
        return (code,)
    return (known.code, known.code_2005) if known.code_2005 else (known.code,)
