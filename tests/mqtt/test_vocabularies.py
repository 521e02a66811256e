"""Vocabularies of contracts.md 1.2 (stage, fuel, vehicle class, direction, plate colour) and
the identifiers (plate, VIN): every accepted spelling and every rejection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.mqtt.errors import PayloadError
from adapters.mqtt.normalise import (
    direction,
    emission_stage,
    fuel,
    plate,
    plate_color,
    text,
    vehicle_class,
    vin,
)

CHINESE = ["零", "一", "二", "三", "四", "五", "六"]
ROMAN = ["", "I", "II", "III", "IV", "V", "VI"]  # no Roman numeral for 国0
UNICODE_ROMAN = ["", "Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "Ⅵ"]
FULL_WIDTH = "０１２３４５６"


def _stage_spellings(n: int) -> list[object]:
    forms: list[object] = [n, str(n), f"国{n}", f"国{CHINESE[n]}", f"China {n}", f"china{n}"]
    forms += [f"国{FULL_WIDTH[n]}", f"国{CHINESE[n]}标准", f"国{CHINESE[n]}阶段"]
    if n:
        roman = ROMAN[n]
        forms += [roman, roman.lower(), f"国{roman}", f"China {roman}", f"国{UNICODE_ROMAN[n]}"]
    return forms


@pytest.mark.parametrize("n", range(7))
def test_every_stage_spelling_maps_to_its_digit(n: int) -> None:
    assert {emission_stage(form) for form in _stage_spellings(n)} == {str(n)}


@pytest.mark.parametrize(
    "spelling", ["6a", "6b", "国六a", "国六b", "国6b", "国VIb", "VIa", "China VI b"]
)
def test_china_6a_and_6b_are_stage_6(spelling: str) -> None:
    assert emission_stage(spelling) == "6"


@pytest.mark.parametrize(
    "spelling", ["d", "D", "electric", "Electric", "EV", "BEV", "新能源", "纯电", "纯电动", "电动"]
)
def test_electric_stage(spelling: str) -> None:
    assert emission_stage(spelling) == "d"


@pytest.mark.parametrize("spelling", ["x", "X", "", "  ", "none", "None", "无", "无排放阶段"])
def test_no_stage(spelling: str) -> None:
    assert emission_stage(spelling) == "x"


@pytest.mark.parametrize(
    ("spelling", "reason"),
    [
        ("Euro V", "value"),  # Euro stages are not China stages
        ("euro6", "value"),
        ("欧五", "value"),
        ("国七", "value"),
        ("7", "value"),
        ("VII", "value"),
        ("国五b", "value"),  # a/b exists only for 国6
        ("国五燃油", "value"),  # combined stage+fuel codes of one JSP ledger: not guessed
        ("stage 5", "value"),
        (7, "value"),
        (-1, "value"),
        (5.0, "schema"),
        (True, "schema"),
        (None, "schema"),
        (["5"], "schema"),
    ],
)
def test_rejected_stages(spelling: object, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        emission_stage(spelling)
    assert caught.value.reason == reason


def _recase(text: str, upper: list[bool]) -> str:
    return "".join(c.upper() if u else c.lower() for c, u in zip(text, upper, strict=False))


@given(
    st.integers(min_value=0, max_value=6),
    st.data(),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.sampled_from(["", " ", "  ", "\t"]),
)
def test_stage_spellings_agree_with_the_canonical_form(
    n: int, data: st.DataObject, upper: list[bool], pad: str
) -> None:
    form = data.draw(st.sampled_from(_stage_spellings(n)))
    spelling = pad + _recase(form, upper) + pad if isinstance(form, str) else form
    assert emission_stage(spelling) == emission_stage(str(n)) == str(n)


FUELS = {
    "diesel": ["diesel", "Diesel", "柴油", "柴油车"],
    "gas": ["gas", "natural gas", "天然气", "燃气", "CNG", "LNG", "NG", "压缩天然气",
            "液化天然气", "LPG", "液化石油气"],
    "gasoline": ["gasoline", "petrol", "汽油"],
    "electric": ["electric", "EV", "BEV", "电", "电动", "纯电", "纯电动", "新能源"],
    "hybrid": ["hybrid", "HEV", "PHEV", "混合动力", "混动", "油电混合", "插电", "插电式混合动力",
               "插混", "增程", "增程式"],
    "hydrogen": ["hydrogen", "FCEV", "fuel cell", "Fuel-Cell", "氢", "氢能", "氢燃料", "燃料电池",
                 "氢燃料电池"],
    "other": ["other", "其他", "其它", "燃油", "甲醇", "methanol", "乙醇", "双燃料"],
}  # fmt: skip
CLASSES = {
    "heavy": ["heavy", "Heavy Truck", "heavy-duty", "HDV", "N3", "n3", "重卡", "重型",
              "重型货车", "重型半挂牵引车", "重型自卸货车", "重型半挂车"],
    "medium": ["medium", "medium truck", "N2", "中卡", "中型", "中型货车", "中型厢式货车"],
    "light": ["light", "light truck", "LDV", "N1", "轻卡", "微卡", "轻型", "轻型货车", "微型货车"],
    "special": ["special", "special vehicle", "专项作业车", "重型专项作业车", "特种车辆"],
    "machinery": ["machinery", "NRMM", "non-road", "Non-Road Mobile Machinery", "非道路移动机械",
                  "非道路", "工程机械", "叉车", "装载机", "挖掘机"],
}  # fmt: skip
DIRECTIONS = {
    "in": ["in", "IN", "In", "entry", "enter", "entrance", "inbound", "进", "进厂", "进场",
           "入", "入厂", "入场", "驶入", " in "],
    "out": ["out", "OUT", "exit", "Exit", "leave", "outbound", "出", "出厂", "出场", "离厂",
            "驶出"],
}  # fmt: skip
COLORS = {
    "blue": ["blue", "BLUE", "蓝", "蓝色", "蓝牌"],
    "yellow": ["yellow", "黄", "黄色", "黄牌"],
    "green": ["green", "绿", "绿色", "绿牌", "渐变绿", "渐变绿色"],
    "yellow-green": ["yellow-green", "yellow green", "YellowGreen", "黄绿", "黄绿色", "黄绿双拼",
                     "黄绿双拼色", "黄绿牌"],
    "white": ["white", "白", "白色", "白牌"],
    "black": ["black", "黑", "黑色", "黑牌"],
}  # fmt: skip


def _cases(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(spelling, code) for code, spellings in table.items() for spelling in spellings]


@pytest.mark.parametrize(("spelling", "code"), _cases(FUELS))
def test_fuel(spelling: str, code: str) -> None:
    assert fuel(spelling) == code


@pytest.mark.parametrize(("spelling", "code"), _cases(CLASSES))
def test_vehicle_class(spelling: str, code: str) -> None:
    assert vehicle_class(spelling) == code


@pytest.mark.parametrize(("spelling", "code"), _cases(DIRECTIONS))
def test_direction(spelling: str, code: str) -> None:
    assert direction(spelling) == code


@pytest.mark.parametrize(("spelling", "code"), _cases(COLORS))
def test_plate_color(spelling: str, code: str) -> None:
    assert plate_color(spelling) == code


@pytest.mark.parametrize("spelling", ["", "unknown", "未知", "未识别"])
def test_unknown_plate_color_is_none(spelling: str) -> None:
    assert plate_color(spelling) is None


@pytest.mark.parametrize(
    ("normaliser", "raw", "reason"),
    [
        (fuel, "coal", "value"),
        (fuel, "柴", "value"),
        (fuel, 1, "schema"),
        (vehicle_class, "bus", "value"),
        (vehicle_class, "M1", "value"),
        (vehicle_class, "N4", "value"),
        (vehicle_class, "大型客车", "value"),
        (vehicle_class, None, "schema"),
        (direction, "sideways", "value"),
        (direction, "1", "value"),  # vendors disagree on 0/1
        (direction, 1, "schema"),
        (direction, "", "value"),
        (plate_color, "2", "value"),  # numeric colour codes differ between vendors
        (plate_color, "purple", "value"),
        (plate_color, 2, "schema"),
    ],
)
def test_vocabulary_rejections(normaliser: object, raw: object, reason: str) -> None:
    assert callable(normaliser)
    with pytest.raises(PayloadError) as caught:
        normaliser(raw)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("京A12345", "京A12345"),
        (" 京a·12345 ", "京A12345"),
        ("京A-12345", "京A12345"),
        ("京A.12345", "京A12345"),
        ("京 A 1234 5", "京A12345"),
        ("京ＡＤ１２３４５", "京AD12345"),  # full width, new-energy 8 characters
        ("冀B1234挂", "冀B1234挂"),
        ("粤Z1234港", "粤Z1234港"),
        ("AB12345678", "AB12345678"),  # 10 characters
    ],
)
def test_plate_normalisation(raw: str, expected: str) -> None:
    assert plate(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("京A12345" * 5 + "12345", "value"),  # 40 characters
        ("京A123456789", "value"),  # 11 characters
        ("京", "value"),
        ("", "value"),
        ("   ", "value"),
        ("京A1234$", "value"),
        ("京Aß1234", "value"),  # upper() would turn ß into SS: only latin a-z are upper-cased
        (12345, "schema"),
        (None, "schema"),
    ],
)
def test_rejected_plates(raw: object, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        plate(raw)
    assert caught.value.reason == reason


def test_a_40_character_plate_message_names_the_length() -> None:
    with pytest.raises(PayloadError, match="40 characters"):
        plate("A" * 40)


def test_vin() -> None:
    assert vin("LFWADRJF011002346") == "LFWADRJF011002346"
    assert vin(" lfwadrjf011002346 ") == "LFWADRJF011002346"
    assert vin("LFWAD-RJF01 1002346") == "LFWADRJF011002346"
    assert vin("") is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("LFWADRJF01100234", "value"),  # 16
        ("LFWADRJF0110023467", "value"),  # 18
        ("LFWADRJF0I1002346", "value"),  # I
        ("LFWADRJF0O1002346", "value"),  # O
        ("LFWADRJF0Q1002346", "value"),  # Q
        ("LFWADRJF01100234京", "value"),
        (17, "schema"),
    ],
)
def test_rejected_vins(raw: object, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        vin(raw)
    assert caught.value.reason == reason


def test_text() -> None:
    assert text("cargo", "  coal ", 32) == "coal"
    assert text("cargo", "  ", 32) is None
    assert text("cargo", "煤" * 32, 32) == "煤" * 32
    for raw, reason in (("煤" * 33, "value"), ("a\x00b", "value"), (5, "schema")):
        with pytest.raises(PayloadError) as caught:
            text("cargo", raw, 32)
        assert caught.value.reason == reason
