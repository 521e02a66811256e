"""HJ 212 factor codes: one vocabulary for every protocol version.

HJ 212-2017 and -2025 use the 6-character codes of HJ 524 / HJ 525 (`a21026`, `w01018`);
HJ/T 212-2005 loggers send the older codes (`02` for SO2, `S01` for O2, `B02` for flue-gas
flow). Rules, the series explainer and the page speak the 2017 code (`canonical`); InfluxDB
keeps the code as the device sent it.

The table is the code tables of HJ 212-2017 Appendix B ("常用监测因子和设备信息编码表"), read once
at import from the package file `gateway/data/factor_codes.csv` (UTF-8, one row a code, columns
`code,code_2005,name_zh,name_en,unit,table,since`):

- `code`: the code as the standard prints it; `code_2005`: its "原编码" (the HJ/T 212-2005
  code), empty when it has none; `name_zh`: the standard's Chinese name; `name_en`: an English
  name; `unit`: the standard's default unit ("缺省计量单位") of the concentration, as a symbol,
  empty for a dimensionless value; `table`: the table of Appendix B; `since`: the
  protocol version that brought the code in ("2017", or "2025" for a code HJ 212-2025 adds).
- B.1 water factors (HJ 525-2009, `w.....`), B.2 gas factors (HJ 524-2009, `a.....`), B.3 noise
  (`LA`, `L10`, `Leq`, ...), B.5 wastewater process (工况) factors (`e101xx`), B.7 flue-gas
  process factors (`g101xx`), B.10 field-device information (`i12001`, `i3331x`). B.4, B.6,
  B.8 and B.9 define the digits inside those codes (treatment process, device and information
  class) and are no codes of their own.
- A code ending in `x` is a pattern: `xx` is the number of the device within its process (B.5,
  B.7: 01-99), `x` a measuring point (B.10: 0-9). `describe("e10101")` is the factor of
  `e101xx` under the code the device sent.
- Where the standard misprints, the table keeps one reading: B.5 prints `e701xx` twice (污水提升泵,
  then 加药量 after `e710xx`) and B.7 prints `g119xx` twice (脱硫率, then 入口二氧化硫 SO2 opening
  the inlet/outlet group); the first is kept. B.10 prints `I33400` (生产负荷) with a capital;
  the table has `i33400` like every other code. Names and units are otherwise as printed
  (`e412xx` 搅拌器转态, `i33102` 监测站房湿度 in ℃), and units are the standard's defaults, but
  for five rows named as officers read them: `w00000` 污水流量 and `a00000` 废气流量 (printed
  污水, 废气), `a34013` 颗粒物（烟尘） (printed 烟尘; HJ 212-2025's name), and `a21001` NH3 and
  `a05002` CH4 in mg/m³ as stack analysers report them (printed ng/m³, the ambient unit that
  other ambient factors such as `a34002` PM10 keep).
- No row is `since` 2025 yet: the codes HJ 212-2025 Appendix B adds are to be entered from the
  text of that standard.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from importlib import resources


@dataclass(frozen=True, slots=True)
class Code:
    """One factor: its 2017 code, the 2005 code it replaced (if any), names and unit, and the
    table of HJ 212-2017 Appendix B and protocol version it comes from."""

    code: str
    code_2005: str | None
    name_zh: str
    name_en: str
    unit: str
    table: str = ""
    since: str = "2017"


O2 = "a19001"
GAS_FLOW = "a00000"
WATER_FLOW = "w00000"
FLOWS = frozenset({GAS_FLOW, WATER_FLOW})

DATA_FILE = "factor_codes.csv"
COLUMNS = ("code", "code_2005", "name_zh", "name_en", "unit", "table", "since")


def _load() -> dict[str, Code]:
    text = (resources.files("gateway") / "data" / DATA_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{DATA_FILE}: the header must be {','.join(COLUMNS)}")
    codes: dict[str, Code] = {}
    for row in reader:
        code = Code(
            row["code"],
            row["code_2005"] or None,
            row["name_zh"],
            row["name_en"],
            row["unit"],
            row["table"],
            row["since"],
        )
        if code.code in codes:
            raise ValueError(f"{DATA_FILE}: {code.code} twice")
        codes[code.code] = code
    return codes


CODES: dict[str, Code] = _load()
_FROM_2005: dict[str, str] = {c.code_2005: c.code for c in CODES.values() if c.code_2005}
_PATTERNS: frozenset[str] = frozenset(code for code in CODES if code.endswith("x"))


def canonical(code: str, version: str | None = None) -> str:
    """The 2017 code of a factor code as a device of protocol `version` sent it.

    `version` "2005" maps the 2005 codes; "2017" and "2025" keep the code. Unknown (None),
    a code that only the 2005 table has is taken as a 2005 code (the two tables share none).
    """
    if version in ("2017", "2025"):
        return code
    return _FROM_2005.get(code, code)


def _instance(code: str) -> Code | None:
    """The factor of a numbered code (`e10101`, `i33312`) by its pattern (`e101xx`, `i3331x`)."""
    for width in (2, 1):
        stem, number = code[:-width], code[-width:]
        if stem and not stem.endswith("x") and number.isdigit():
            pattern = stem + "x" * width
            if pattern in _PATTERNS:
                return replace(CODES[pattern], code=code)
    return None


def describe(code: str, version: str | None = None) -> Code | None:
    """The factor a code names, or None when the vocabulary does not know it.

    A code numbered after a pattern of the table (`e10101` after `e101xx`) is that pattern's
    factor, under the code as given."""
    known = canonical(code, version)
    return CODES.get(known) or _instance(known)


def spellings(code: str) -> tuple[str, ...]:
    """Every code a device may send for the factor `code` (2017 code first, then 2005)."""
    known = CODES.get(canonical(code))
    if known is None:
        return (code,)
    return (known.code, known.code_2005) if known.code_2005 else (known.code,)
