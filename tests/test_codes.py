"""The code gate: which factor codes become series, and where the others' values go."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from adapters.hj212.codes import UNRECOGNISED, CodeGate
from gateway.model import Point
from gateway.registry import Registry, RegistryFile
from gateway.vocabulary import CODES

REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "outlets": [
                        {
                            "id": "DA1",
                            "mn": "MN1",
                            "password": "x",
                            "pollutants": {"a21026": {"limit": 35}},
                            "codes": ["ele01"],
                        },
                        {"id": "DA2", "mn": "MN2", "password": "x"},
                    ],
                }
            ]
        }
    )
)
DEVICE = REGISTRY.device("MN1")
OTHER = REGISTRY.device("MN2")
assert DEVICE is not None and OTHER is not None


def emission(code: str, ns: int = 0, interval: str = "hour") -> Point:
    tags = (
        ("enterprise", "E1"),
        ("outlet", "DA1"),
        ("mn", "MN1"),
        ("pollutant", code),
        ("interval", interval),
    )
    return Point("emission", tags, (("avg", 1.5), ("flag", "N"), ("backfill", False)), ns)


def test_standard_and_declared_codes_are_series() -> None:
    gate = CodeGate(max_extra_per_device=0)
    codes = ["a21026", "w01018", "02", "S01", "B02", "ele01"]
    out = gate.admit(DEVICE, [emission(c) for c in codes])
    assert [p.tag("pollutant") for p in out] == codes


def test_codes_of_the_standard_shape_are_admitted_up_to_the_bound_per_device() -> None:
    gate = CodeGate(max_extra_per_device=3)
    invented = [f"a9{i:04d}" for i in range(10)]
    out = gate.admit(DEVICE, [emission(c) for c in invented])
    series = [p for p in out if p.measurement == "emission"]
    assert [p.tag("pollutant") for p in series] == invented[:3]
    (held,) = [p for p in out if p.measurement == UNRECOGNISED]
    assert held.field("count") == 7 and held.field("codes") == ",".join(invented[3:])
    assert held.tags == (
        ("enterprise", "E1"),
        ("outlet", "DA1"),
        ("mn", "MN1"),
        ("interval", "hour"),
    )
    # the first three stay admitted; another device has its own allowance
    assert gate.admitted(DEVICE, invented[0]) and not gate.admitted(DEVICE, invented[5])
    assert gate.admitted(OTHER, invented[5])


def test_values_of_unrecognised_codes_are_kept_verbatim_one_point_per_record() -> None:
    gate = CodeGate()
    out = gate.admit(DEVICE, [emission("bad\\"), emission("x y"), emission("a21026")])
    assert [p.tag("pollutant") for p in out if p.measurement == "emission"] == ["a21026"]
    (held,) = [p for p in out if p.measurement == UNRECOGNISED]
    values = json.loads(str(held.field("values")))
    assert values == {"bad\\": {"Avg": 1.5, "Flag": "N"}, "x y": {"Avg": 1.5, "Flag": "N"}}


def test_records_of_other_times_and_intervals_are_held_apart() -> None:
    gate = CodeGate()
    out = gate.admit(DEVICE, [emission("zz1", 1), emission("zz1", 2), emission("zz1", 2, "day")])
    assert len([p for p in out if p.measurement == UNRECOGNISED]) == 3


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=200))
def test_any_codes_make_at_most_the_bound_of_new_series(codes: list[str]) -> None:
    gate = CodeGate(max_extra_per_device=32)
    out = gate.admit(DEVICE, [emission(c) for c in codes])
    standard = set(CODES) | {c.code_2005 for c in CODES.values() if c.code_2005} | {"ele01"}
    series = {p.tag("pollutant") for p in out if p.measurement == "emission"}
    extra = series - standard
    assert len(extra) <= 32
    assert len([p for p in out if p.measurement == UNRECOGNISED]) <= 1
