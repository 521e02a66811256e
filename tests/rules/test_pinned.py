"""values_pinned: hourly values held just under the limit with too little variation; must-not
cases on realistic clean CEMS hours (near the limit, with a real process's variation)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.pinned import ValuesPinned

T0 = datetime(2026, 11, 20, tzinfo=UTC)
MN, MN_2005 = "MN00000000000000000000P1", "MN00000000000000000000P5"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "热电一厂",
                    "region": "city-a",
                    "outlets": [
                        {
                            "id": "DA001",
                            "mn": MN,
                            "password": "x",
                            "pollutants": {
                                "a21026": {"limit": 35, "ref_o2": 6, "unit": "mg/m3"},
                                "a21002": {"limit": 50, "ref_o2": 6, "unit": "mg/m3"},
                            },
                        },
                        {
                            "id": "DA002",
                            "mn": MN_2005,
                            "password": "x",
                            "version": "2005",
                            "pinned_hours": 6,
                            "pinned_band": 0.9,
                            "pinned_cv": 0.005,
                            "pollutants": {"a21026": {"limit": 35}},
                        },
                    ],
                }
            ]
        }
    )
)


def hour(h: int, value: float, *, code: str = "a21026", mn: str = MN, flag: str = "N") -> Point:
    tags = (("mn", mn), ("pollutant", code), ("interval", "hour"))
    fields = (("avg", value * 1.3), ("zs_avg", value), ("flag", flag))
    return Point("emission", tags, fields, to_ns(T0 + timedelta(hours=h)))


def feed(rule: ValuesPinned, points: list[Point]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for point in points:
        out += rule.on_points([point], T0)
    return out


def pinned(
    rng: random.Random, hours: range, centre: float = 33.6, spread: float = 0.25
) -> list[Point]:
    return [hour(h, centre + rng.uniform(-spread, spread)) for h in hours]


def test_values_held_just_under_the_limit_open_at_the_window_s_first_hour() -> None:
    rule = ValuesPinned(lambda: REGISTRY)
    rng = random.Random(3)
    clean = [hour(h, 18 + 8 * rng.random()) for h in range(0, 10)]
    out = feed(rule, clean + pinned(rng, range(10, 30)))
    opened = [a for a in out if a.state == "open"]
    assert opened and all(a.id == opened[0].id for a in opened)
    first = opened[0]
    assert (first.type, first.severity, first.subject) == (
        "values_pinned",
        "warning",
        "outlet:E1/DA001/a21026",
    )
    assert first.started_at == T0 + timedelta(hours=10)  # the first hour of the window
    assert first.evidence["held_hours"] == 12 and first.evidence["basis"] == "ZsAvg"
    assert len(first.evidence["window_values"]) == 12 and first.evidence["cv"] < 0.01
    assert opened[-1].evidence["held_hours"] == 20  # one version per further hour
    text = summary(opened[-1], "zh", REGISTRY)
    assert text.startswith("热电一厂 废气排放口DA001二氧化硫") and "贴线" in text, text
    assert "连续20小时" in text and "变异系数" in text
    closed = feed(rule, [hour(30, 21.0)])
    assert [a.state for a in closed] == ["closed"]
    assert closed[0].ended_at == T0 + timedelta(hours=30)  # the end of its last pinned hour
    assert "已恢复波动" in summary(closed[0], "zh", REGISTRY)


@pytest.mark.parametrize("seed", range(20))
def test_must_not_a_clean_stack_near_its_limit_raises_nothing(seed: int) -> None:
    """Ultra-low emission CEMS hours: SO2 around 80 % of the limit, often within the band,
    with the variation of a working boiler (about 5 %), NOx steady at 70 %; a month of them."""
    rule = ValuesPinned(lambda: REGISTRY)
    rng = random.Random(seed)
    points = []
    level = 28.0
    for h in range(0, 24 * 30):
        level = 28.0 + 0.8 * (level - 28.0) + rng.gauss(0, 1.8)  # a mean-reverting load
        points.append(hour(h, level))
        points.append(hour(h, 35.0 + rng.gauss(0, 2.0), code="a21002"))
    assert feed(rule, points) == []


def test_must_not_constant_values_over_the_limit_or_gaps_raise_nothing() -> None:
    rule = ValuesPinned(lambda: REGISTRY)
    rng = random.Random(5)
    constant = [hour(h, 33.0) for h in range(0, 20)]  # suspicious_data's constant pattern
    over = [hour(h, 35.5 + rng.uniform(0, 0.2)) for h in range(20, 40)]  # over_limit's case
    gappy = [hour(h, 33.6 + rng.uniform(-0.2, 0.2)) for h in range(40, 80) if h % 10]
    invalid = [
        hour(h, 33.6 + rng.uniform(-0.2, 0.2), flag="M" if h % 8 == 0 else "N")
        for h in range(80, 140)
    ]
    no_limit = [hour(h, 10.0 + rng.uniform(0, 0.1), code="a34013") for h in range(0, 30)]
    assert feed(rule, constant + over + gappy + invalid + no_limit) == []


def test_a_missing_hour_or_an_invalid_hour_closes_it() -> None:
    rule = ValuesPinned(lambda: REGISTRY)
    rng = random.Random(8)
    assert feed(rule, pinned(rng, range(0, 12)))[-1].state == "open"
    closed = feed(rule, pinned(rng, range(13, 14)))  # hour 12 missing
    assert [a.state for a in closed] == ["closed"]
    assert closed[0].ended_at == T0 + timedelta(hours=12)
    assert feed(rule, pinned(rng, range(14, 25)))[-1].state == "open"
    flagged = feed(rule, [hour(25, 33.6, flag="D")])
    assert [a.state for a in flagged] == ["closed"]


def test_late_hours_are_not_judged_and_a_replay_gives_the_same_anomaly() -> None:
    rng = random.Random(9)
    hours = pinned(rng, range(0, 14))
    first = feed(ValuesPinned(lambda: REGISTRY), hours)
    rule = ValuesPinned(lambda: REGISTRY)
    again = feed(rule, hours)
    assert [a.id for a in again] == [a.id for a in first] and again
    assert feed(rule, [hour(3, 10.0)]) == []  # back-filled: the present was judged without it


def test_per_outlet_thresholds_and_a_2005_code() -> None:
    rule = ValuesPinned(lambda: REGISTRY)
    rng = random.Random(4)
    # 6 h windows, within 90 % of the limit, variation under 0.5 %
    tight = [hour(h, 33.5 + rng.uniform(-0.1, 0.1), code="02", mn=MN_2005) for h in range(6)]
    out = feed(rule, tight)
    assert [a.subject for a in out] == ["outlet:E1/DA002/a21026"]
    assert out[0].evidence["code_sent"] == "02" and out[0].evidence["window_hours"] == 6
    rule = ValuesPinned(lambda: REGISTRY)
    loose = [hour(h, 33.0 + (0.4 if h % 2 else -0.4), code="02", mn=MN_2005) for h in range(12)]
    assert feed(rule, loose) == []  # 1.2 % variation in every window: above this outlet's 0.5 %


def test_a_restart_carries_an_open_anomaly_on_instead_of_closing_and_reopening_it() -> None:
    rng = random.Random(12)
    before = feed(ValuesPinned(lambda: REGISTRY), pinned(rng, range(0, 14)))
    anomaly = before[-1]
    assert anomaly.state == "open"
    rule = ValuesPinned(lambda: REGISTRY)  # after a restart
    rule.restore([anomaly])
    after = feed(rule, pinned(rng, range(14, 30)))
    assert after and {a.id for a in after} == {anomaly.id}
    assert all(a.state == "open" for a in after) and after[-1].evidence["held_hours"] == 30
    closed = feed(rule, [hour(30, 20.0)])
    assert [(a.id, a.state) for a in closed] == [(anomaly.id, "closed")]
