"""The factor-code table: HJ 212-2017 Appendix B, as gateway/data/factor_codes.csv ships it."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections import Counter
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import pytest

from gateway.vocabulary import (
    CODES,
    COLUMNS,
    FLOWS,
    GAS_FLOW,
    O2,
    WATER_FLOW,
    Code,
    canonical,
    describe,
    spellings,
)

ROOT = Path(__file__).resolve().parents[1]


def _rows() -> list[dict[str, str]]:
    text = (resources.files("gateway") / "data" / "factor_codes.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


ROWS = _rows()

# Rows per table of HJ 212-2017 Appendix B. B.5 prints 90 rows and B.7 55, with e701xx and
# g119xx twice each; B.4, B.6, B.8 and B.9 hold no codes.
PER_TABLE = {"B.1": 63, "B.2": 121, "B.3": 12, "B.5": 89, "B.7": 54, "B.10": 38}

SHAPES = {
    "B.1": r"w\d{5}",
    "B.2": r"a\d{5}",
    "B.3": r"L(A|eq|dn|d|n|Mx|Mn|\d{1,2})",
    "B.5": r"e\d{3}xx",
    "B.7": r"g\d{3}xx",
    "B.10": r"i\d{5}|i\d{4}x",
}

# The entries the vocabulary had before it became the whole table: (2017 code, 2005 code).
EARLIER = (
    ("w00000", "B01"), ("w01001", "001"), ("w01002", "002"), ("w01009", None),
    ("w01010", None), ("w01012", "003"), ("w01014", None), ("w01017", "010"),
    ("w01018", "011"), ("w01019", None), ("w01020", "015"), ("w20111", "020"),
    ("w20115", "022"), ("w20116", "023"), ("w20117", "024"), ("w20119", "026"),
    ("w20120", "027"), ("w20121", "028"), ("w20122", "029"), ("w20123", "030"),
    ("w21001", "065"), ("w21003", "060"), ("w21011", "101"), ("w21016", "070"),
    ("w21017", "072"), ("w21019", "071"), ("w22001", "080"), ("w23002", "110"),
    ("a00000", "B02"), ("a01011", "S02"), ("a01012", "S03"), ("a01013", "S08"),
    ("a01014", "S05"), ("a01015", "S06"), ("a01016", "S07"), ("a01017", "S04"),
    ("a19001", "S01"), ("a21026", "02"), ("a21002", "03"), ("a21003", None),
    ("a21004", None), ("a21005", "04"), ("a21028", "05"), ("a21018", "06"),
    ("a21024", "08"), ("a21001", "10"), ("a34013", "01"), ("a24087", "25"),
    ("a24088", None), ("a05002", None), ("a25002", None), ("a25003", "17"),
    ("a25005", "18"),
)  # fmt: skip


def test_the_file_loads_whole_into_the_vocabulary() -> None:
    assert len(ROWS) == len(CODES)
    for row in ROWS:
        assert CODES[row["code"]] == Code(
            row["code"],
            row["code_2005"] or None,
            row["name_zh"],
            row["name_en"],
            row["unit"],
            row["table"],
            row["since"],
        )


def test_codes_are_unique() -> None:
    assert [c for c, n in Counter(r["code"] for r in ROWS).items() if n > 1] == []


def test_rows_per_table_are_the_standards() -> None:
    assert Counter(r["table"] for r in ROWS) == PER_TABLE
    assert sum(PER_TABLE.values()) == len(CODES) == 377


def test_every_code_has_its_tables_shape() -> None:
    for row in ROWS:
        assert re.fullmatch(SHAPES[row["table"]], row["code"]), row
    # the pollutant and information codes of HJ 524 / HJ 525: one letter and five digits
    plain = [c for c in CODES.values() if c.table in ("B.1", "B.2") or not c.code.endswith("x")]
    assert all(re.fullmatch(r"[a-z]\d{5}", c.code) for c in plain if c.table != "B.3")


def test_2005_codes_are_unique_and_apart_from_the_2017_codes() -> None:
    old = [r["code_2005"] for r in ROWS if r["code_2005"]]
    assert len(old) == len(set(old)) == 93
    assert all(re.fullmatch(r"\d{2,3}|[BS]\d{2}", c) for c in old)
    assert not set(old) & set(CODES)
    # only the pollutant tables of the standard carry an original code
    assert {r["table"] for r in ROWS if r["code_2005"]} == {"B.1", "B.2"}


def test_every_row_has_names_a_table_and_a_version() -> None:
    for row in ROWS:
        assert re.search(r"[\u4e00-\u9fff]", row["name_zh"]), row
        assert row["name_zh"] == row["name_zh"].strip() and " " not in row["name_zh"], row
        assert row["name_en"].strip(), row
        assert row["since"] in ("2017", "2025"), row
        assert row["unit"] == row["unit"].strip(), row


@pytest.mark.parametrize(
    ("code", "old", "name", "unit"),
    [
        ("w00000", "B01", "污水流量", "L/s"),
        ("w01001", "001", "pH值", ""),
        ("w01012", "003", "悬浮物", "mg/L"),
        ("w01018", "011", "化学需氧量", "mg/L"),
        ("w19002", "520", "阴离子表面活性剂", "mg/L"),
        ("w20111", "020", "总汞", "μg/L"),
        ("w20117", "024", "六价铬", "μg/L"),
        ("w21003", "060", "氨氮", "mg/L"),
        ("w21011", "101", "总磷", "mg/L"),
        ("w99001", "061", "有机氮", "mg/L"),
        ("a00000", "B02", "废气流量", "m³/s"),
        ("a01010", "37", "林格曼黑度", ""),
        ("a01011", "S02", "烟气流速", "m/s"),
        ("a01012", "S03", "烟气温度", "℃"),
        ("a19001", "S01", "氧气含量", "%"),
        ("a21001", "10", "氨（氨气）", "mg/m³"),
        ("a21002", "03", "氮氧化物", "mg/m³"),
        ("a21005", "04", "一氧化碳", "mg/m³"),
        ("a21026", "02", "二氧化硫", "mg/m³"),
        ("a24088", None, "非甲烷总烃", "mg/m³"),
        ("a25003", "17", "甲苯", "mg/m³"),
        ("a34013", "01", "颗粒物（烟尘）", "mg/m³"),
        ("a34004", None, "细微颗粒物PM2.5", "ng/m³"),
        ("a99051", "12", "二硫化碳", "mg/m³"),
        ("Leq", None, "等效声级", "dB"),
        ("e101xx", None, "进水口流量", "L/s"),
        ("e701xx", None, "污水提升泵", "A"),
        ("g119xx", None, "脱硫率", "%"),
        ("i12001", None, "工作状态", ""),
        ("i33400", None, "生产负荷", "%"),
    ],
)
def test_known_codes(code: str, old: str | None, name: str, unit: str) -> None:
    known = CODES[code]
    assert (known.code_2005, known.name_zh, known.unit) == (old, name, unit)


def test_the_earlier_entries_stay() -> None:
    for code, old in EARLIER:
        assert CODES[code].code_2005 == old, code
    assert {O2, GAS_FLOW, WATER_FLOW} <= set(CODES)
    assert set(FLOWS) == {GAS_FLOW, WATER_FLOW}


def test_2005_codes_round_trip() -> None:
    for known in CODES.values():
        if known.code_2005 is None:
            assert canonical(known.code) == known.code
            assert spellings(known.code) == (known.code,)
            continue
        old = known.code_2005
        assert canonical(old, "2005") == canonical(old) == known.code
        assert canonical(old, "2017") == canonical(old, "2025") == old
        assert canonical(known.code, "2005") == known.code
        assert describe(old, "2005") is describe(old) is describe(known.code, "2017") is known
        assert describe(old, "2017") is None
        assert spellings(old) == spellings(known.code) == (known.code, old)


def test_numbered_codes_are_their_patterns_factor() -> None:
    inlet = describe("e10101", "2017")
    assert inlet is not None and (inlet.code, inlet.name_zh, inlet.table) == (
        "e10101",
        "进水口流量",
        "B.5",
    )
    assert describe("g11903") == Code("g11903", None, "脱硫率", CODES["g119xx"].name_en, "%", "B.7")
    furnace = describe("i33312")
    assert furnace is not None and furnace.name_zh == "炉膛内上部焚烧温度"
    assert "e10101" not in CODES and spellings("e10101") == ("e10101",)
    for unknown in ("e99901", "e1010", "e101x1", "i3339", "a99999", "x", ""):
        assert describe(unknown) is None, unknown


def test_a_wheel_ships_the_file() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    globs = setup["setuptools"]["package-data"]["gateway"]
    assert any(fnmatch("data/factor_codes.csv", g) for g in globs)
