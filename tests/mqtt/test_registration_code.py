"""Non-road machinery's registration code (登记编码) on gate records: normalised, refused when
impossible, stored as a field only when sent."""

from __future__ import annotations

import json

import pytest

from adapters.mqtt.convert import gate_point
from adapters.mqtt.errors import PayloadError
from adapters.mqtt.normalise import registration_code
from adapters.mqtt.payloads import parse_payload

MACHINE = {
    "time": "2026-01-05T08:00:00+08:00",
    "direction": "进",
    "plate": "装载机07",
    "emission_stage": "国三",
    "fuel": "柴油",
    "vehicle_class": "非道路移动机械",
}


def test_codes_are_compacted_like_plates() -> None:
    assert registration_code("冀A·F12345") == "冀AF12345"
    assert registration_code(" 京nrm-00001 ") == "京NRM00001"
    assert registration_code("  ") is None


@pytest.mark.parametrize("raw", ["A1", "冀A" + "1" * 40, "冀A#12345"])
def test_impossible_codes_are_refused(raw: str) -> None:
    with pytest.raises(PayloadError) as caught:
        registration_code(raw)
    assert caught.value.reason == "value"


def test_a_number_is_a_schema_error() -> None:
    with pytest.raises(PayloadError) as caught:
        registration_code(12345)
    assert caught.value.reason == "schema"


def test_the_code_is_stored_when_sent_and_absent_when_empty() -> None:
    sent = {**MACHINE, "registration_code": "冀A·F12345"}
    [with_code, without] = parse_payload("gate", json.dumps([sent, MACHINE]).encode())
    stored = dict(gate_point("E1", "G1", with_code).fields)
    assert stored["registration_code"] == "冀AF12345"
    assert "registration_code" not in dict(gate_point("E1", "G1", without).fields)
    assert dict(gate_point("E1", "G1", with_code).tags)["vehicle_class"] == "machinery"
