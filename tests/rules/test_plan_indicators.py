"""plan_indicator_exceeded: a plan's key indicator (furnaces in operation, load, a value a device
reports) beyond the limit of the plans in force, after the grace, for its persistence; and the
registry's validation of indicators and their limits."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.indicators import PlanIndicatorExceeded

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 Beijing; the grace ends at T0 + 2 h
MN = "MN0000000000000000000077"
RESPONSIBLE, CONTACT = "张伟", "13800000000"

DATA: dict[str, Any] = {
    "enterprises": [
        {
            "id": "E1",
            "name": "某水泥有限公司",
            "region": "city-a",
            "outlets": [
                {
                    "id": "DA001",
                    "mn": MN,
                    "password": "123456",
                    "version": "2025",
                    "pollutants": {"a21026": {"limit": 35, "ref_o2": 10.0}},
                    "codes": ["a01012", "KT01"],
                }
            ],
            "meters": [
                {"id": "P1", "role": "production", "line": "L1"},
                {"id": "P2", "role": "production", "line": "L1"},
                {"id": "P3", "role": "production", "line": "L2"},
            ],
            "lines": [
                {
                    "id": "L1",
                    "name": "熟料线",
                    "indicators": [
                        {"id": "furnaces", "name": "在产窑炉数", "source": "running"},
                        {
                            "id": "kiln_temp",
                            "name": "窑尾温度",
                            "source": "device",
                            "mn": MN,
                            "code": "KT01",
                        },
                        {
                            "id": "flue_temp",
                            "name": "烟气温度",
                            "source": "device",
                            "mn": MN,
                            "code": "a01012",
                            "interval": "minute",
                        },
                    ],
                },
                {
                    "id": "L2",
                    "name": "粉磨线",
                    "indicators": [
                        {
                            "id": "load",
                            "name": "负荷率",
                            "source": "load",
                            "meter": "P3",
                            "rated_kw": 1000,
                        }
                    ],
                },
            ],
            "plans": {
                "orange": {"indicators": {"L1/furnaces": {"max": 2}}},
                "event": {
                    "responsible": RESPONSIBLE,
                    "contact": CONTACT,
                    "indicators": {
                        "L1/furnaces": {"max": 1},
                        "L1/kiln_temp": {"max": 900},
                        "L1/flue_temp": {"max": 150},
                        "L2/load": {"max": 60},
                    },
                },
            },
        }
    ]
}
REGISTRY = Registry(RegistryFile.model_validate(DATA))


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    yield regime
    regime.close()


def alert(regime: Regime, start_h: float, end_h: float, **kind: str) -> str:
    spec = {"regions": ["city-a"], "starts_at": T0 + timedelta(hours=start_h)}
    spec |= {"ends_at": T0 + timedelta(hours=end_h), **kind}
    return regime.add_alert(AlertSpec.model_validate(spec)).id


def power(meter: str, minute: float, p_kw: float, running: bool = True) -> Point:
    tags = (("enterprise", "E1"), ("meter", meter), ("role", "production"), ("line", ""))
    fields = (("p_kw", p_kw), ("running", running))
    return Point("power", tags, fields, to_ns(T0 + timedelta(minutes=minute)))


def furnaces(rule: PlanIndicatorExceeded, minutes: range, running: int) -> list[Anomaly]:
    """Both kiln meters read every 5 min; the first `running` of them run."""
    out: list[Anomaly] = []
    for minute in minutes:
        batch = [
            power(m, minute, 800.0 if n < running else 3.0, n < running)
            for n, m in enumerate(("P1", "P2"))
        ]
        out += rule.on_points(batch, T0)
    return out


def condition(minute: float, value: float, flag: str = "N") -> Point:
    """A 2025 operating condition (ST=45) of the kiln: vendor code KT01."""
    tags = (("enterprise", "E1"), ("outlet", "DA001"), ("mn", MN), ("code", "KT01"))
    fields = (("value", value), ("flag", flag), ("backfill", False))
    return Point("operating_condition", tags, fields, to_ns(T0 + timedelta(minutes=minute)))


def minute_record(minute: float, avg: float) -> Point:
    tags = (
        ("enterprise", "E1"),
        ("outlet", "DA001"),
        ("mn", MN),
        ("pollutant", "a01012"),
        ("interval", "minute"),
    )
    fields = (("avg", avg), ("flag", "N"), ("backfill", False))
    return Point("emission", tags, fields, to_ns(T0 + timedelta(minutes=minute)))


def feed(rule: PlanIndicatorExceeded, points: list[Point]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for point in points:
        out += rule.on_points([point], T0)
    return out


def test_two_furnaces_under_an_event_plan_of_one_opens_after_grace_and_persistence(
    regime: Regime,
) -> None:
    alert(regime, 0, 24, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    assert furnaces(rule, range(0, 120, 5), running=2) == []  # the ramp-down grace: 2 h
    assert furnaces(rule, range(120, 150, 5), running=2) == []  # 25 min: not yet 30
    [opened] = furnaces(rule, range(150, 155, 5), running=2)
    assert opened.type == "plan_indicator_exceeded" and opened.severity == "alarm"
    assert opened.subject == "line:E1/L1/furnaces" and opened.state == "open"
    assert opened.started_at == T0 + timedelta(hours=2)
    ev = opened.evidence
    assert (ev["indicator"], ev["value"], ev["max_allowed"], ev["min_allowed"]) == (
        "furnaces",
        2.0,
        1,
        None,
    )
    assert (ev["plan_key"], ev["responsible"], ev["contact"]) == ("event", RESPONSIBLE, CONTACT)
    assert ev["indicator_source"] == {"from": "running", "meters": ["P1", "P2"]}
    assert ev["obligation"]["grace_until"] == (T0 + timedelta(hours=2)).isoformat()
    assert ev["obligation"]["sources"][0]["level"] == "event"
    assert len(ev["values"]) == 7 and ev["values"][0]["at"] == (T0 + timedelta(hours=2)).isoformat()
    assert furnaces(rule, range(155, 200, 5), running=2) == []  # still open: no new version
    [closed] = furnaces(rule, range(200, 205, 5), running=1)
    assert closed.id == opened.id and closed.state == "closed"
    assert closed.ended_at == T0 + timedelta(minutes=200)
    assert (closed.evidence["closed_as"], closed.evidence["closing_value"]) == ("within", 1.0)


def test_the_tightest_plan_in_force_governs_and_names_its_key(regime: Regime) -> None:
    alert(regime, 0, 24, level="orange")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    assert furnaces(rule, range(120, 240, 5), running=2) == []  # orange allows 2
    alert(regime, 0, 24, layer="event")
    [opened] = furnaces(rule, range(240, 275, 5), running=2)
    assert opened.evidence["plan_key"] == "event" and opened.evidence["max_allowed"] == 1


def test_must_not_within_the_limit(regime: Regime) -> None:
    alert(regime, 0, 24, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    assert furnaces(rule, range(0, 6 * 60, 5), running=1) == []
    assert feed(rule, [condition(m, 880.0) for m in range(120, 300, 5)]) == []


def test_must_not_outside_the_plans_window_and_closes_when_it_ends(regime: Regime) -> None:
    alert(regime, 4, 8, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    assert furnaces(rule, range(0, 4 * 60, 5), running=2) == []  # before the event period
    assert furnaces(rule, range(4 * 60, 6 * 60 + 25, 5), running=2) == []  # grace, persist
    [opened] = furnaces(rule, range(6 * 60 + 30, 6 * 60 + 35, 5), running=2)
    assert furnaces(rule, range(6 * 60 + 35, 8 * 60, 5), running=2) == []
    [closed] = furnaces(rule, range(8 * 60, 8 * 60 + 5, 5), running=2)  # the period ended
    assert closed.id == opened.id and closed.evidence["closed_as"] == "released"
    assert summary(closed, registry=REGISTRY).endswith("2026-12-01 16:00时方案不再生效。")
    assert "某水泥有限公司 产线熟料线(L1)关键指标在产窑炉数" in summary(closed, registry=REGISTRY)
    assert furnaces(rule, range(8 * 60 + 5, 12 * 60, 5), running=2) == []


def test_must_not_an_indicator_the_plan_in_force_does_not_name(regime: Regime) -> None:
    alert(regime, 0, 24, level="orange")  # the orange plan limits furnaces only
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    assert feed(rule, [power("P3", m, 950.0) for m in range(0, 6 * 60, 5)]) == []
    assert feed(rule, [condition(m, 1200.0) for m in range(0, 6 * 60, 5)]) == []


def test_must_not_within_the_grace(regime: Regime) -> None:
    alert(regime, 0, 24, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    # beyond for the whole 2 h grace (far over the 30 min persistence), back within at its end
    assert feed(rule, [power("P3", m, 950.0) for m in range(0, 120, 5)]) == []
    assert feed(rule, [power("P3", m, 500.0) for m in range(120, 300, 5)]) == []


def test_a_load_over_the_plan_opens_with_its_percent(regime: Regime) -> None:
    alert(regime, 0, 24, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    [opened] = feed(rule, [power("P3", m, 900.0) for m in range(120, 155, 5)])
    assert opened.subject == "line:E1/L2/load" and opened.evidence["value"] == 90.0
    assert opened.evidence["indicator_source"] == {"from": "load", "meter": "P3", "rated_kw": 1000}


def test_a_device_value_opens_and_flagged_values_neither_open_nor_close(regime: Regime) -> None:
    alert(regime, 0, 24, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    # flagged values (maintenance) over the limit: not judged
    assert feed(rule, [condition(m, 1100.0, "M") for m in range(120, 200, 5)]) == []
    [opened] = feed(rule, [condition(m, 950.0) for m in range(200, 235, 5)])
    assert opened.evidence["indicator_source"]["code"] == "KT01"
    assert opened.evidence["peak"] == 950.0
    assert feed(rule, [condition(240, 700.0, "D")]) == []  # a fault flag does not close
    [closed] = feed(rule, [condition(245, 850.0)])
    assert closed.state == "closed" and closed.evidence["closing_value"] == 850.0


def test_a_minute_record_of_a_standard_code_is_judged(regime: Regime) -> None:
    alert(regime, 0, 24, layer="event")
    rule = PlanIndicatorExceeded(lambda: REGISTRY, regime)
    [opened] = feed(rule, [minute_record(m, 180.0) for m in range(120, 160, 10)])
    assert opened.subject == "line:E1/L1/flue_temp" and opened.evidence["max_allowed"] == 150


# -- registry validation ----------------------------------------------------------------------


def invalid(change: Any) -> str:
    data = copy.deepcopy(DATA)
    change(data["enterprises"][0])
    with pytest.raises(ValidationError) as caught:
        RegistryFile.model_validate(data)
    return str(caught.value)


def test_a_plan_naming_an_unknown_line_or_indicator_is_refused() -> None:
    def line(ent: Any) -> None:
        ent["plans"]["event"]["indicators"]["L9/furnaces"] = {"max": 1}

    def indicator(ent: Any) -> None:
        ent["plans"]["orange"]["indicators"]["L1/ovens"] = {"max": 1}

    assert "'L9/furnaces' names unknown line 'L9'" in invalid(line)
    assert "plans.orange.indicators: 'L1/ovens': line 'L1' has no indicator 'ovens'" in invalid(
        indicator
    )


def test_an_indicator_naming_an_unknown_meter_or_another_enterprises_mn_is_refused() -> None:
    def meter(ent: Any) -> None:
        ent["lines"][1]["indicators"][0]["meter"] = "P9"

    def foreign(ent: Any) -> None:
        ent["lines"][0]["indicators"][1]["mn"] = "MN-OF-E2"

    assert "indicator 'L2/load' names unknown meter 'P9'" in invalid(meter)
    data = copy.deepcopy(DATA)
    foreign(data["enterprises"][0])
    data["enterprises"].append(
        {"id": "E2", "outlets": [{"id": "DW001", "mn": "MN-OF-E2", "password": "x"}]}
    )
    with pytest.raises(ValidationError) as caught:
        RegistryFile.model_validate(data)
    assert "indicator E1/L1/kiln_temp: MN 'MN-OF-E2' is a device of enterprise 'E2'" in str(
        caught.value
    )


def test_an_indicator_source_needs_what_it_reads() -> None:
    def no_rating(ent: Any) -> None:
        del ent["lines"][1]["indicators"][0]["rated_kw"]

    def no_code(ent: Any) -> None:
        del ent["lines"][0]["indicators"][1]["code"]

    def twice(ent: Any) -> None:
        ent["lines"][0]["indicators"].append({"id": "furnaces", "source": "running"})

    def slash(ent: Any) -> None:
        ent["lines"][0]["indicators"][0]["id"] = "a/b"

    assert "indicator 'load': a load needs meter and rated_kw" in invalid(no_rating)
    assert "indicator 'kiln_temp': a device value needs mn and code" in invalid(no_code)
    assert "line 'L1': indicator 'furnaces' appears twice" in invalid(twice)
    assert "lines.0.indicators.0.id" in invalid(slash)


def test_an_indicator_limit_needs_a_bound_in_order() -> None:
    def empty(ent: Any) -> None:
        ent["plans"]["event"]["indicators"]["L1/furnaces"] = {}

    def reversed_(ent: Any) -> None:
        ent["plans"]["event"]["indicators"]["L1/furnaces"] = {"min": 3, "max": 1}

    assert "an indicator limit needs max, min or both" in invalid(empty)
    assert "min 3 is above max 1" in invalid(reversed_)
