"""Transport rules beyond one alert level: every plan key in force (a reinforced layer on top of
the level), standing rules outside alerts (from a date, for enterprises, industries, regions),
non-road machinery without a registration code, and staggered transport windows. Each with
its must-not cases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.anomalies.messages import summary
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.vehicles import BannedVehicleEntry

CST = timedelta(hours=8)
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 Beijing time
WHITELIST = {
    "plate": "冀A00001",
    "valid_from": "2026-01-01T00:00:00+08:00",
    "valid_to": "2027-06-01T00:00:00+08:00",
    "reason": "民生保障",
}


def registry(**extra: Any) -> Registry:
    raw: dict[str, Any] = {
        "enterprises": [
            {
                "id": "E1",
                "name": "钢铁一厂",
                "region": "city-a",
                "industry": "steel",
                "gates": [
                    {"id": "G1", "name": "北门", "registration_codes": True},
                    {"id": "G2", "name": "南门"},  # its system sends no registration codes
                ],
                "transport": {
                    "orange": {"max_banned_stage": 4},
                    "reinforced": [
                        {"max_banned_stage": 5},  # on top of the level: 国5 too
                        {"banned_classes": ["machinery"], "require_registration": True},
                        {"banned_classes": ["machinery"], "max_banned_stage": 2},
                    ],
                },
                "whitelist": [WHITELIST],
            },
            {"id": "E2", "name": "水泥二厂", "region": "city-b", "industry": "cement"},
        ],
        **extra,
    }
    return Registry(RegistryFile.model_validate(raw))


STANDING = registry(
    transport_standing=[
        {
            "name": "钢铁行业清洁运输",
            "since": "2026-10-01",
            "industries": ["steel"],
            "max_banned_stage": 5,  # 国六 or electric only
            "directions": ["in", "out"],
        },
        {
            "name": "城区错峰运输",
            "since": "2026-01-01",
            "until": "2027-01-01",
            "regions": ["city-b"],
            "max_banned_stage": 6,
            "time_windows": ["07:00-09:00", "17:00-19:00"],
        },
        {
            "name": "夏季错峰",
            "since": "2026-01-01",
            "enterprises": ["E2"],
            "max_banned_stage": 6,
            "months": [6, 7, 8],
        },
    ]
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    yield regime
    regime.close()


def declare(regime: Regime, **spec: Any) -> None:
    regime.add_alert(
        AlertSpec.model_validate(
            {
                "starts_at": T0 - timedelta(hours=1),
                "ends_at": T0 + timedelta(hours=1),
                "regions": ["city-a"],
                **spec,
            }
        )
    )


def passage(
    plate: str,
    stage: str,
    *,
    ent: str = "E1",
    gate: str = "G1",
    fuel: str = "diesel",
    cls: str = "heavy",
    direction: str = "in",
    at: datetime = T0,
    code: str | None = None,
) -> Point:
    tags = (
        ("enterprise", ent),
        ("gate", gate),
        ("direction", direction),
        ("emission_stage", stage),
        ("fuel", fuel),
        ("vehicle_class", cls),
    )
    fields: tuple[tuple[str, str], ...] = (("plate", plate),)
    if code is not None:
        fields += (("registration_code", code),)
    return Point("vehicle_passage", tags, fields, to_ns(at))


def beijing(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


# -- every plan key in force -----------------------------------------------------------------


def test_a_reinforced_layer_bans_on_top_of_the_level(regime: Regime) -> None:
    declare(regime, level="orange", layer="reinforced")
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    (guo5,) = rule.on_points([passage("冀A12345", "5")], T0)
    assert (guo5.evidence["level"], guo5.evidence["source"]["level"]) == ("reinforced",) * 2
    assert guo5.evidence["source"]["kind"] == "alert plan"
    assert guo5.evidence["alert_id"] == guo5.evidence["source"]["ref"]
    assert guo5.evidence["rule"]["max_banned_stage"] == 5
    text = summary(guo5, "zh", STANDING)
    assert "重污染天气应急强化管控生效" in text and "禁止国五及以下柴油、燃气重型货车进厂" in text


def test_under_orange_alone_the_reinforced_rules_do_not_apply(regime: Regime) -> None:
    declare(regime, level="orange")
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    (guo4,) = rule.on_points([passage("冀A12344", "4")], T0)
    assert guo4.evidence["level"] == "orange"
    later = [passage("冀A12345", "5", at=T0 + timedelta(minutes=1))]
    (standing,) = rule.on_points(later, T0)  # not the reinforced rule: the standing one
    assert standing.evidence["source"]["kind"] == "standing rule"
    plain = registry()
    assert BannedVehicleEntry(lambda: plain, regime).on_points(later, T0) == []


# -- non-road mobile machinery ---------------------------------------------------------------


def test_machinery_without_a_registration_code_is_banned(regime: Regime) -> None:
    declare(regime, layer="reinforced")
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    (unregistered,) = rule.on_points([passage("装载机07", "4", cls="machinery")], T0)
    assert unregistered.evidence["rule"]["require_registration"] is True
    assert unregistered.evidence["registration_code"] is None
    text = summary(unregistered, "zh", STANDING)
    assert "禁止未登记编码的非道路移动机械进厂" in text, text
    assert "without a registration code" in summary(unregistered, "en", STANDING)


def test_machinery_stage_threshold_of_its_own(regime: Regime) -> None:
    declare(regime, layer="reinforced")
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    (guo2,) = rule.on_points([passage("挖掘机02", "2", cls="machinery", code="冀AF00002")], T0)
    assert guo2.evidence["rule"]["max_banned_stage"] == 2
    assert guo2.evidence["registration_code"] == "冀AF00002"


def test_must_not_registered_machinery_and_gates_without_codes(regime: Regime) -> None:
    declare(regime, layer="reinforced")
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    points = [
        passage("挖掘机03", "3", cls="machinery", code="冀AF00003"),  # registered, 国3
        passage("挖掘机04", "3", cls="machinery", gate="G2"),  # G2 never sends codes
        passage("冀A20006", "6"),  # 国6 heavy truck
        passage("冀A20007", "4", fuel="electric"),  # electric
        passage("冀A00001", "3", cls="machinery"),  # whitelisted
    ]
    assert rule.on_points(points, T0) == []
    assert [p.field("allowed") for p in rule.take_verdicts()] == [True] * 5


# -- standing rules --------------------------------------------------------------------------


def test_a_standing_rule_bans_outside_alerts(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    (entry,) = rule.on_points([passage("冀A30005", "5", direction="out")], T0)
    assert entry.evidence["level"] is None and entry.evidence["alert_id"] is None
    assert entry.evidence["source"] == {
        "kind": "standing rule",
        "ref": "钢铁行业清洁运输",
        "since": "2026-10-01T00:00:00+08:00",
        "until": None,
    }
    assert "name" not in entry.evidence["rule"]  # the vehicle terms only
    text = summary(entry, "zh", STANDING)
    assert "自2026-10-01 00:00起执行的常态化管控规定「钢铁行业清洁运输」生效" in text, text
    assert "该规定禁止国五及以下柴油、燃气重型货车进出厂" in text
    assert "standing rule 钢铁行业清洁运输" in summary(entry, "en", STANDING)


def test_must_not_standing_rule_before_its_date_other_industry_clean_trucks(
    regime: Regime,
) -> None:
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    points = [
        passage("冀A30001", "5", at=beijing("2026-09-30T23:59")),  # before its since
        passage("冀A30002", "5", ent="E2", at=beijing("2026-12-01T10:00")),  # cement, 10:00
        passage("冀A30003", "6"),  # 国六
        passage("冀A30004", "5", fuel="electric"),  # electric (the stage aside)
        passage("冀A30005", "d", fuel="electric"),
        passage("冀A00001", "4"),  # whitelisted
        passage("冀A30006", "5", cls="light"),  # not a heavy truck
    ]
    assert rule.on_points(points, T0) == []


# -- staggered transport windows -------------------------------------------------------------


def test_staggered_windows_ban_only_within_their_hours(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    times = ["2026-12-01T07:00", "2026-12-01T08:59", "2026-12-01T09:00", "2026-12-01T18:30"]
    found = [
        rule.on_points([passage(f"冀B4000{i}", "6", ent="E2", at=beijing(t))], T0)
        for i, t in enumerate(times)
    ]
    assert [len(f) for f in found] == [1, 1, 0, 1]
    text = summary(found[0][0], "zh", STANDING)
    assert "城区错峰运输" in text and "（限07:00-09:00、17:00-19:00）" in text, text
    # the window's until: from 2027 on it no longer bans
    assert (
        rule.on_points([passage("冀B40009", "6", ent="E2", at=beijing("2027-01-04T08:00"))], T0)
        == []
    )


def test_a_rule_of_given_months_bans_only_in_them(regime: Regime) -> None:
    rule = BannedVehicleEntry(lambda: STANDING, regime)
    (summer,) = rule.on_points(
        [passage("冀B50001", "5", ent="E2", at=beijing("2026-07-01T12:00"))], T0
    )
    assert summer.evidence["rule"]["months"] == [6, 7, 8]
    assert "（限6、7、8月）" in summary(summer, "zh", STANDING)
    assert (
        rule.on_points([passage("冀B50002", "5", ent="E2", at=beijing("2026-09-01T12:00"))], T0)
        == []
    )


# -- registry validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"transport_standing": [{"name": "s", "since": "2026-01-01", "enterprises": ["E9"]}]},
            "transport_standing[0] ('s').enterprises: unknown enterprise 'E9'",
        ),
        (
            {"transport_standing": [{"name": "s", "since": "2026-01-01"}]},
            "covers no enterprise, industry or region",
        ),
        (
            {
                "transport_standing": [
                    {"name": "s", "since": "2026-02-01", "until": "2026-01-01", "regions": ["x"]}
                ]
            },
            "until must be after since",
        ),
        (
            {
                "transport_standing": [
                    {"name": "s", "since": "2026-01-01", "regions": ["city-a"]},
                    {"name": "s", "since": "2026-01-01", "regions": ["city-b"]},
                ]
            },
            "transport_standing[1] ('s'): name appears twice",
        ),
        (
            {
                "transport_standing": [
                    {
                        "name": "s",
                        "since": "2026-01-01",
                        "regions": ["city-a"],
                        "time_windows": ["7:00-9:00"],
                    }
                ]
            },
            "'7:00-9:00' is not HH:MM-HH:MM",
        ),
        (
            {
                "transport_standing": [
                    {"name": "s", "since": "2026-01-01", "regions": ["city-a"], "months": [13]}
                ]
            },
            "months are 1 to 12, not 13",
        ),
        ({"heavy_user_movements": 0}, "heavy_user_movements"),
    ],
)
def test_registry_refuses_bad_standing_rules(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        registry(**extra)


def test_registry_refuses_bad_transport_rule_and_gate_keys() -> None:
    base = registry().data.model_dump()
    bad_rules = [
        ({"time_windows": ["07:00-07:00"]}, "is empty"),
        ({"months": [0]}, "months are 1 to 12"),
        ({"require_registration": "sometimes"}, "require_registration"),
    ]
    for rule, message in bad_rules:
        raw = {**base, "enterprises": [{**base["enterprises"][1], "transport": {"red": rule}}]}
        with pytest.raises(ValueError, match=message):
            RegistryFile.model_validate(raw)
    gate = {"id": "G1", "registration_codes": "maybe"}
    with pytest.raises(ValueError, match="registration_codes"):
        RegistryFile.model_validate({"enterprises": [{"id": "E", "gates": [gate]}]})
    with pytest.raises(ValueError, match="heavy_user_movements"):
        RegistryFile.model_validate({"enterprises": [{"id": "E", "heavy_user_movements": 0}]})
