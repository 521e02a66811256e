"""One plate form for every source: `gateway.plates` and the registry's whitelist."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.plates import PlateError, compact, normalise_plate, valid_plate
from gateway.registry import Registry, RegistryFile

PROVINCES = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
# spaces, full stops, hyphens and low lines (plain and full-width), middle dots
SEPARATORS = " \u3000\u00a0.\uff0e-\uff0d_\uff3f\u00b7\u2022\u30fb\uff65\u2027\u2219\u22c5"

plates = st.builds(
    lambda province, letter, tail: province + letter + tail,
    st.sampled_from(PROVINCES),
    st.sampled_from(LETTERS),
    st.text(alphabet=LETTERS + "0123456789", min_size=5, max_size=6),
)


def full_width(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


@st.composite
def spelled(draw: st.DrawFn, plate: str) -> str:
    """`plate` as a person or a vendor might write it: separators, full width, lower case."""
    out = []
    for ch in plate:
        if draw(st.booleans()):
            ch = ch.lower()
        if draw(st.booleans()):
            ch = full_width(ch)
        out.append(draw(st.text(alphabet=SEPARATORS, max_size=2)) + ch)
    return "".join(out) + draw(st.text(alphabet=SEPARATORS, max_size=2))


@given(st.text())
@example("a.\u0308")  # NFKC joins a letter and a mark once the separator between them is gone
@example("\u00a8")  # NFKC turns a spacing diaeresis into a space and a combining mark
def test_normalising_is_idempotent(raw: str) -> None:
    once = normalise_plate(raw)
    assert normalise_plate(once) == once


@given(st.data(), plates)
def test_every_spelling_of_a_plate_normalises_to_it(data: st.DataObject, plate: str) -> None:
    raw = data.draw(spelled(plate))
    assert normalise_plate(raw) == valid_plate(raw) == plate


@given(st.data(), plates, plates)
def test_spellings_of_different_plates_stay_different(data: st.DataObject, a: str, b: str) -> None:
    same = normalise_plate(data.draw(spelled(a))) == normalise_plate(data.draw(spelled(b)))
    assert same == (a == b)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("冀A·12345", "冀A12345"),
        (" 冀a12345 ", "冀A12345"),
        ("冀Ａ１２３４５", "冀A12345"),
        ("冀A\u300012345", "冀A12345"),  # full-width space
        ("冀A_12345", "冀A12345"),
        ("冀A‧12345", "冀A12345"),  # hyphenation point
        ("冀A\u038712345", "冀A12345"),  # Greek ano teleia, NFKC's middle dot
        ("冀A–12345", "冀A12345"),  # en dash
        ("京ＡＤ１２３４５", "京AD12345"),
        ("冀B1234挂", "冀B1234挂"),
    ],
)
def test_examples(raw: str, expected: str) -> None:
    assert valid_plate(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("京A123456789", "11 characters, at most 10"),
        ("京", "not 2..10 letters, digits or 汉字"),
        (" · ", "not 2..10 letters, digits or 汉字"),
        ("京A1234$", "not 2..10 letters, digits or 汉字"),
        ("京Aß1234", "not 2..10 letters, digits or 汉字"),  # only a-z are upper-cased
    ],
)
def test_invalid_plates(raw: str, message: str) -> None:
    with pytest.raises(PlateError, match=message):
        valid_plate(raw)
    assert normalise_plate(raw) == compact(raw)  # normalising alone never refuses


def whitelist(*plates: str) -> dict[str, object]:
    entries = [
        {
            "plate": plate,
            "valid_from": "2026-11-01T00:00:00+08:00",
            "valid_to": "2027-01-01T00:00:00+08:00",
        }
        for plate in plates
    ]
    return {"enterprises": [{"id": "E1", "whitelist": entries}]}


def test_registry_whitelist_plates_load_normalised() -> None:
    data = RegistryFile.model_validate(
        whitelist("冀A·12345", "冀a 12345", "冀Ａ１２３４５", "冀A-12345")
    )
    assert [w.plate for w in data.enterprises[0].whitelist] == ["冀A12345"] * 4


def test_an_invalid_whitelist_plate_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(
        '[[enterprises]]\nid = "E1"\n[[enterprises.whitelist]]\nplate = "冀A·1234$"\n'
        "valid_from = 2026-11-01T00:00:00+08:00\nvalid_to = 2027-01-01T00:00:00+08:00\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        Registry.load(path)
    (problem,) = caught.value.problems
    assert problem == (
        f"{path}: enterprises[0].whitelist[0].plate: "
        "plate '冀A·1234$' is not 2..10 letters, digits or 汉字"
    )
