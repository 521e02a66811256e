"""Power and gate payloads: accepted shapes, every rejection with its reason, and the promise
that any bytes give models or PayloadError, never another exception."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mqtt.payloads import (
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    MAX_RECORDS,
    GatePayload,
    PayloadError,
    PowerPayload,
    parse_payload,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)
KINDS: list[Literal["power", "gate"]] = ["power", "gate"]
POWER = {
    "time": "2026-01-05 08:00:00",
    "p_kw": 312.5,
    "kwh": 104532.25,
    "ua": 231.2,
    "ub": 229.8,
    "uc": 230.4,
    "ia": 412.0,
    "ib": 409.5,
    "ic": 415.1,
    "pf": 0.93,
    "switch": 1,
}
GATE = {
    "time": 1767571200000,
    "direction": "进厂",
    "plate": "冀B·12345",
    "plate_color": "黄色",
    "vin": "lfwadrjf011002346",
    "engine_no": " 6DM3-1234567 ",
    "emission_stage": "国Ⅵ",
    "fuel": "柴油",
    "vehicle_class": "重型半挂牵引车",
    "registration_date": "20190301",
    "cargo": "铁矿石",
    "tonnage": 31.5,
    "fleet": "唐山某运输有限公司",
    "photo_url": "https://example.invalid/p/1.jpg",
}


def _raw(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def _reject(kind: Literal["power", "gate"], raw: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse_payload(kind, raw)
    assert caught.value.message == str(caught.value)
    return caught.value


def test_full_power_payload() -> None:
    [reading] = parse_payload("power", _raw(POWER))
    assert reading.model_dump() == {
        "time": T0, "p_kw": 312.5, "kwh": 104532.25, "ua": 231.2, "ub": 229.8, "uc": 230.4,
        "ia": 412.0, "ib": 409.5, "ic": 415.1, "pf": 0.93, "switch": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    "document",
    [
        {"time": 1767571200000, "kwh": 0},
        {"time": "2026-01-05T08:00:00+08:00", "p_kw": -12.5},  # export
        {"time": "2026-01-05T00:00:00Z", "p_kw": "12.5", "extra": "ignored", "freq": 50},
    ],
)
def test_power_needs_time_and_one_of_p_kw_kwh(document: dict[str, Any]) -> None:
    [reading] = parse_payload("power", _raw(document))
    assert reading.time == T0
    assert (reading.p_kw, reading.kwh) != (None, None)


def test_switch_accepts_true_false() -> None:
    [on, off] = parse_payload(
        "power", _raw([{**POWER, "switch": True}, {**POWER, "switch": False}])
    )
    assert (on.switch, off.switch) == (1, 0)


def test_full_gate_payload_is_normalised() -> None:
    [passage] = parse_payload("gate", _raw(GATE))
    assert passage.model_dump() == {
        "time": T0,
        "direction": "in",
        "plate": "冀B12345",
        "plate_color": "yellow",
        "plate_color_raw": "黄色",
        "vin": "LFWADRJF011002346",
        "engine_no": "6DM3-1234567",
        "emission_stage": "6",
        "stage_raw": "国Ⅵ",
        "fuel": "diesel",
        "vehicle_class": "heavy",
        "registration_date": date(2019, 3, 1),
        "registration_code": None,  # a truck: machinery alone has one
        "cargo": "铁矿石",
        "tonnage": 31.5,
        "fleet": "唐山某运输有限公司",
        "photo_url": "https://example.invalid/p/1.jpg",
    }


def test_minimal_gate_payload_and_raw_values() -> None:
    document = {"time": "2026-01-05 08:00:00", "direction": "OUT", "plate": "京a12345"}
    [passage] = parse_payload("gate", _raw({**document, "emission_stage": 5, "stage_raw": "x"}))
    assert (passage.direction, passage.plate) == ("out", "京A12345")
    assert (passage.emission_stage, passage.stage_raw) == ("5", "5")  # the key "stage_raw" is ours
    [bare] = parse_payload("gate", _raw({**document, "vin": "", "fuel": None}))
    assert (bare.vin, bare.fuel, bare.emission_stage, bare.stage_raw) == (None, None, None, None)


def test_an_array_gives_one_model_per_object_and_a_bom_is_allowed() -> None:
    raw = b"\xef\xbb\xbf" + _raw([POWER, {**POWER, "time": 1767571260000}])
    readings = parse_payload("power", raw)
    assert [r.time.minute for r in readings] == [0, 1]


@pytest.mark.parametrize(
    ("kind", "document", "reason", "words"),
    [
        ("power", {**POWER, "kwh": -1}, "value", "kwh"),
        ("power", {**POWER, "kwh": 1e13}, "value", "kwh"),
        ("power", {**POWER, "pf": 1.01}, "value", "pf"),
        ("power", {**POWER, "pf": -1.5}, "value", "pf"),
        ("power", {**POWER, "ua": 1e9}, "value", "ua"),
        ("power", {**POWER, "ub": -230}, "value", "ub"),
        ("power", {**POWER, "ic": -1}, "value", "ic"),
        ("power", {**POWER, "p_kw": 2e7}, "value", "p_kw"),
        ("power", {**POWER, "switch": 256}, "value", "switch"),
        ("power", {**POWER, "kwh": "NaN"}, "value", "kwh"),
        ("power", {**POWER, "time": "2026-13-01T00:00:00"}, "value", "time"),
        ("power", {k: v for k, v in POWER.items() if k != "time"}, "schema", "time"),
        ("power", {"time": POWER["time"], "ua": 230.0}, "schema", "p_kw or kwh"),
        ("power", {"time": POWER["time"], "p_kw": None, "kwh": None}, "schema", "p_kw or kwh"),
        ("power", {**POWER, "kwh": True}, "schema", "kwh"),
        ("power", {**POWER, "kwh": "lots"}, "schema", "kwh"),
        ("power", {**POWER, "switch": 1.5}, "schema", "switch"),
        ("power", {**POWER, "time": 1767571200000.0}, "schema", "time"),
        ("gate", {**GATE, "plate": "京A12345" * 5 + "12345"}, "value", "40 characters"),
        ("gate", {**GATE, "vin": "LFWADRJF01100234"}, "value", "vin"),
        ("gate", {**GATE, "vin": "LFWADRJFO11002346"}, "value", "vin"),
        ("gate", {**GATE, "emission_stage": "Euro V"}, "value", "Euro"),
        ("gate", {**GATE, "emission_stage": "国七"}, "value", "emission_stage"),
        ("gate", {**GATE, "fuel": "coal"}, "value", "fuel"),
        ("gate", {**GATE, "vehicle_class": "bus"}, "value", "vehicle_class"),
        ("gate", {**GATE, "direction": "sideways"}, "value", "direction"),
        ("gate", {**GATE, "plate_color": "3"}, "value", "plate_color"),
        ("gate", {**GATE, "tonnage": -0.5}, "value", "tonnage"),
        ("gate", {**GATE, "tonnage": 1000}, "value", "tonnage"),
        ("gate", {**GATE, "engine_no": "E" * 33}, "value", "engine_no"),
        ("gate", {**GATE, "registration_date": "2019-02-30"}, "value", "registration_date"),
        ("gate", {k: v for k, v in GATE.items() if k != "plate"}, "schema", "plate"),
        ("gate", {k: v for k, v in GATE.items() if k != "direction"}, "schema", "direction"),
        ("gate", {k: v for k, v in GATE.items() if k != "time"}, "schema", "time"),
        ("gate", {**GATE, "plate": 12345}, "schema", "plate"),
        ("gate", {**GATE, "tonnage": False}, "schema", "tonnage"),
    ],
)
def test_rejections(
    kind: Literal["power", "gate"], document: dict[str, Any], reason: str, words: str
) -> None:
    error = _reject(kind, _raw(document))
    assert error.reason == reason
    assert words in error.message


def test_one_bad_item_rejects_the_whole_array_and_is_named() -> None:
    error = _reject("power", _raw([POWER, POWER, {**POWER, "kwh": -5}]))
    assert (error.reason, error.message.startswith("item 2: kwh")) == ("value", True)
    assert "-5" in error.message


def test_mixed_schema_and_value_errors_are_schema() -> None:
    error = _reject("gate", _raw({"time": GATE["time"], "direction": "sideways"}))
    assert error.reason == "schema"
    assert "direction" in error.message and "plate" in error.message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "json"),
        (b"{", "json"),
        (b"{'time': 1}", "json"),
        (b"\xff\xfe{}", "json"),
        (b"\xc3\x28", "json"),
        (b"[" * 100_000 + b"]" * 100_000, "json"),
        (b"1" * 5000, "json"),  # longer than Python's integer-digit limit
        (b"[]", "schema"),
        (b"null", "schema"),
        (b'"text"', "schema"),
        (b"[1, 2]", "schema"),
        (b"[{}, []]", "schema"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "size"),
    ],
)
def test_envelope_rejections(raw: bytes, reason: str) -> None:
    for kind in KINDS:
        assert _reject(kind, raw).reason == reason


def test_too_many_records() -> None:
    assert parse_payload("power", _raw([POWER] * MAX_RECORDS))[-1].kwh == POWER["kwh"]
    assert _reject("power", _raw([POWER] * (MAX_RECORDS + 1))).reason == "size"


def _nested(depth: int, shape: str) -> str:
    return "[" * depth + "]" * depth if shape == "list" else '{"a":' * depth + "1" + "}" * depth


def _under_stack(frames: int, kind: Literal["power", "gate"], raw: bytes) -> str:
    """parse_payload called `frames` calls deeper: repr or validation of a deeply nested value
    must not run out of stack however deep the caller is."""
    if frames:
        return _under_stack(frames - 1, kind, raw)
    try:
        parse_payload(kind, raw)
    except PayloadError as exc:
        return exc.reason
    return "accepted"


@pytest.mark.parametrize("key", ["time", "plate", "unknown_key"])
@pytest.mark.parametrize("shape", ["list", "dict"])
def test_deep_nesting_is_refused_without_running_out_of_stack(key: str, shape: str) -> None:
    # depths around json's own limit (about 1000, less the caller's stack) are the dangerous ones
    for depth in [*range(MAX_NESTING + 1, 40), *range(850, 1000), 5000]:
        document = _raw({**POWER, **GATE})[:-1] + f', "{key}": {_nested(depth, shape)}}}'.encode()
        for kind in KINDS:
            for frames in (0, 150):
                assert _under_stack(frames, kind, document) in ("schema", "json")


def test_nesting_up_to_the_limit_in_an_unknown_key_is_ignored() -> None:
    deepest = _nested(MAX_NESTING - 2, "dict")  # inside an array and its object
    raw = _raw([POWER])[:-2] + f', "vendor": {deepest}}}]'.encode()
    assert parse_payload("power", raw)[0].kwh == POWER["kwh"]
    too_deep = _raw([POWER])[:-2] + f', "vendor": {_nested(MAX_NESTING - 1, "dict")}}}]'.encode()
    assert _reject("power", too_deep).reason == "schema"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_value_errors(constant: bytes) -> None:
    raw = b'{"time": 1767571200000, "kwh": ' + constant + b"}"
    assert _reject("power", raw).reason == "value"


# ------------------------------------------------------------------------------- properties

REASONS = {"size", "json", "schema", "value"}


def _check_any(kind: Literal["power", "gate"], raw: bytes) -> None:
    """parse_payload gives models of the kind, or PayloadError with a known reason."""
    try:
        records = parse_payload(kind, raw)
    except PayloadError as exc:
        assert exc.reason in REASONS
        assert exc.message
        return
    expected = PowerPayload if kind == "power" else GatePayload
    assert records and all(type(r) is expected for r in records)
    for record in records:
        if isinstance(record, PowerPayload):
            assert record.p_kw is not None or record.kwh is not None
            assert record.kwh is None or (math.isfinite(record.kwh) and record.kwh >= 0)
            assert record.pf is None or -1 <= record.pf <= 1
        else:
            assert 2 <= len(record.plate) <= 10 and record.plate == record.plate.strip()
            assert record.vin is None or len(record.vin) == 17
        assert record.time.tzinfo is not None


@settings(max_examples=300)
@given(st.sampled_from(KINDS), st.binary(max_size=512))
def test_any_bytes_give_models_or_payload_error(kind: Literal["power", "gate"], raw: bytes) -> None:
    _check_any(kind, raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = sorted({*POWER, *GATE, "stage_raw", "plate_color_raw"})


@settings(max_examples=300)
@given(st.sampled_from(KINDS), json_values)
def test_any_json_document_gives_models_or_payload_error(
    kind: Literal["power", "gate"], document: object
) -> None:
    _check_any(kind, json.dumps(document).encode())


@settings(max_examples=400)
@given(
    st.sampled_from(KINDS),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6),
    st.booleans(),
)
def test_valid_payloads_with_fields_replaced_give_models_or_payload_error(
    kind: Literal["power", "gate"], changes: dict[str, object], as_array: bool
) -> None:
    document: object = {**(POWER if kind == "power" else GATE), **changes}
    _check_any(kind, json.dumps([document] if as_array else document).encode())


@given(st.sampled_from(KINDS), st.binary(min_size=1, max_size=64), st.integers(0, 400))
def test_valid_payloads_with_bytes_inserted_give_models_or_payload_error(
    kind: Literal["power", "gate"], junk: bytes, at: int
) -> None:
    raw = _raw(POWER if kind == "power" else GATE)
    _check_any(kind, raw[:at] + junk + raw[at:])
