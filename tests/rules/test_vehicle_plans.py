"""Transport rules as the plans write them: several at one level, cargo bans, exits judged
where a plan bans 进出; must-not cases for an electric truck, a whitelisted plate, a cargo not
named and an exit under an entry-only rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

from gateway.anomalies.messages import summary
from gateway.cargo import cargo_category
from gateway.model import Point, to_ns
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.vehicles import BannedVehicleEntry
from tests.rules.test_vehicles import T0, alert

TRANSPORT: dict[str, Any] = {
    "orange": [
        {"max_banned_stage": 4},  # diesel and gas heavy trucks of 国4 and below, entering
        {  # 国5 and below may not carry muck or sand in or out
            "max_banned_stage": 5,
            "banned_cargo": ["muck", "sand_gravel"],
            "directions": ["in", "out"],
        },
        {  # non-road machinery of 国2 and below
            "max_banned_stage": 2,
            "banned_classes": ["machinery"],
            "banned_fuels": ["diesel"],
        },
    ]
}
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "建材一厂",
                    "region": "city-a",
                    "gates": [{"id": "G1", "name": "北门"}],
                    "transport": TRANSPORT,
                    "whitelist": [
                        {
                            "plate": "冀A00001",
                            "valid_from": "2026-11-01T00:00:00+08:00",
                            "valid_to": "2027-01-01T00:00:00+08:00",
                            "reason": "民生保障",
                        }
                    ],
                }
            ]
        }
    )
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    alert(regime, "orange", regions=["city-a"])
    yield regime
    regime.close()


def passage(
    plate: str,
    stage: str,
    *,
    fuel: str = "diesel",
    cls: str = "heavy",
    direction: str = "in",
    cargo: str | None = None,
    minutes: int = 0,
) -> Point:
    tags = (
        ("enterprise", "E1"),
        ("gate", "G1"),
        ("direction", direction),
        ("emission_stage", stage),
        ("fuel", fuel),
        ("vehicle_class", cls),
    )
    fields: tuple[tuple[str, str], ...] = (("plate", plate),)
    if cargo is not None:
        fields += (("cargo", cargo),)
    return Point("vehicle_passage", tags, fields, to_ns(T0 + timedelta(minutes=minutes)))


def test_cargo_words_name_their_category() -> None:
    assert cargo_category("建筑渣土") == "muck"
    assert cargo_category(" 机制砂石 ") == "sand_gravel"
    assert cargo_category("粉煤灰") == "fertiliser_ash"
    assert cargo_category("钢材") is None and cargo_category("") is None
    assert cargo_category(None) is None


def test_a_guo5_truck_carrying_muck_is_banned_entering_and_leaving(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: REGISTRY, regime)
    (entering,) = rule.on_points([passage("冀A12345", "5", cargo="渣土")], T0)
    (leaving,) = rule.on_points(
        [passage("冀A12345", "5", cargo="渣土", direction="out", minutes=30)], T0
    )
    assert entering.subject == "gate:E1/G1/冀A12345"
    assert leaving.subject == "gate:E1/G1/冀A12345/out"
    assert (leaving.evidence["direction"], leaving.evidence["cargo"]) == ("out", "muck")
    assert leaving.evidence["cargo_raw"] == "渣土"
    assert leaving.evidence["rule"]["banned_cargo"] == ["muck", "sand_gravel"]
    text = summary(leaving, "zh", REGISTRY)
    assert "运输渣土" in text and "出厂" in text and "禁止国五及以下运输渣土、砂石的" in text, text
    assert "进出厂" in text


def test_machinery_has_its_own_threshold_at_the_same_level(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: REGISTRY, regime)
    banned = rule.on_points([passage("挖掘机01", "2", cls="machinery")], T0)
    allowed = rule.on_points([passage("挖掘机02", "3", cls="machinery", minutes=1)], T0)
    assert len(banned) == 1 and allowed == []


def test_must_not_allowed_vehicles_raise_nothing(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: REGISTRY, regime)
    points = [
        passage("冀A20001", "5", cargo="钢材"),  # 国5 carrying steel: no cargo ban
        passage("冀A20002", "5"),  # 国5, no cargo recorded: nothing proves a ban
        passage("冀A20003", "4", fuel="electric"),  # electric
        passage("冀A00001", "3", cargo="渣土"),  # whitelisted
        passage("冀A20004", "4", direction="out"),  # leaving: the 国4 rule bans entering only
        passage("冀A20005", "6", cargo="砂石"),  # 国6
    ]
    verdicts = rule.on_points(points, T0)
    assert verdicts == []
    assert [p.field("allowed") for p in rule.take_verdicts()] == [True] * 6


def test_one_rule_per_level_as_before_still_reads() -> None:
    one = RegistryFile.model_validate(
        {"enterprises": [{"id": "E", "transport": {"red": {"max_banned_stage": 5}}}]}
    )
    (rules,) = one.enterprises[0].transport.values()
    assert [r.max_banned_stage for r in rules] == [5] and rules[0].directions == ["in"]
    with pytest.raises(ValueError, match="banned_cargo"):
        RegistryFile.model_validate(
            {"enterprises": [{"id": "E", "transport": {"red": {"banned_cargo": ["gold"]}}}]}
        )


def questioned(reason: str) -> float:
    found = METRICS.get_sample_value("gate_records_questioned_total", {"reason": reason})
    return found or 0.0


def test_gate_records_without_a_plate_or_entering_twice_are_counted(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: REGISTRY, regime)
    no_plate, twice = questioned("no_plate"), questioned("entered_twice")
    rule.on_points([passage("无牌", "6"), passage("未识别", "6", minutes=1)], T0)
    assert questioned("no_plate") == no_plate + 2
    rule.on_points([passage("冀B11111", "6", minutes=2), passage("冀B11111", "6", minutes=9)], T0)
    assert questioned("entered_twice") == twice + 1
    # must-not: in, out, in again; and another plate
    rule.on_points(
        [
            passage("冀B22222", "6", minutes=2),
            passage("冀B22222", "6", direction="out", minutes=5),
            passage("冀B22222", "6", minutes=30),
            passage("冀B33333", "6", minutes=31),
        ],
        T0,
    )
    assert questioned("entered_twice") == twice + 1
    assert questioned("no_plate") == no_plate + 2
