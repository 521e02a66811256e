"""values_copied: one series' hourly values written into another (two pollutants of one outlet,
or one pollutant at two outlets of one enterprise); must-not cases on a month of clean hours
sent with one decimal, where equal values happen by chance."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.copied import ValuesCopied

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MN1, MN2, MN3 = ("MN00000000000000000000C1", "MN00000000000000000000C2", "MN00000000000000000000C3")


def outlet(ident: str, mn: str, **kw: object) -> dict[str, object]:
    return {"id": ident, "mn": mn, "password": "x", **kw}


REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "水泥一厂",
                    "region": "city-a",
                    "outlets": [outlet("DA001", MN1), outlet("DA002", MN2)],
                },
                {
                    "id": "E2",
                    "region": "city-a",
                    "outlets": [outlet("DA001", MN3, copied_hours=3, copied_window=4)],
                },
            ]
        }
    )
)


def hour(h: int, value: float, *, mn: str = MN1, code: str = "a21026", flag: str = "N") -> Point:
    tags = (("mn", mn), ("pollutant", code), ("interval", "hour"))
    return Point("emission", tags, (("avg", value), ("flag", flag)), to_ns(T0 + timedelta(hours=h)))


def feed(rule: ValuesCopied, points: list[Point]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for point in points:
        out += rule.on_points([point], T0)
    return out


def copied_stack(rng: random.Random, hours: range) -> list[Point]:
    """DA002's SO2 is DA001's, hour for hour."""
    out = []
    for h in hours:
        value = round(rng.uniform(15, 30), 1)
        out += [hour(h, value), hour(h, value, mn=MN2)]
    return out


def test_one_pollutant_copied_to_another_outlet_opens_at_its_first_equal_hour() -> None:
    rule = ValuesCopied(lambda: REGISTRY)
    rng = random.Random(2)
    own = [hour(h, round(rng.uniform(15, 20), 1)) for h in range(0, 10)]
    own += [hour(h, round(rng.uniform(25, 30), 1), mn=MN2) for h in range(0, 10)]
    out = feed(rule, own + copied_stack(rng, range(10, 20)))
    opened = [a for a in out if a.state == "open"]
    assert opened and {a.id for a in opened} == {opened[0].id}
    first = opened[0]
    assert (first.type, first.severity, first.subject) == (
        "values_copied",
        "warning",
        "copied:E1/DA001/a21026=DA002/a21026",
    )
    assert first.started_at == T0 + timedelta(hours=10)
    assert first.evidence["equal_count"] == 6 and len(first.evidence["equal_hours"]) == 6
    assert opened[-1].evidence["equal_count"] == 10
    text = summary(opened[-1], "zh", REGISTRY)
    assert text.startswith(
        "水泥一厂 废气排放口DA001二氧化硫(a21026)与废气排放口DA002二氧化硫(a21026)"
    )
    assert "疑似雷同：自2026-11-01 18:00起共10小时数值完全相同" in text, text
    # the copy stops: the window of 12 holds fewer than 6 equal hours after 7 differing ones
    differ = [hour(h, 20.0 + h % 7, mn=m) for h in range(20, 27) for m in (MN1,)]
    differ += [hour(h, 40.0 + h % 5, mn=MN2) for h in range(20, 27)]
    closed = [a for a in feed(rule, differ) if a.state == "closed"]
    assert len(closed) == 1 and closed[0].ended_at == T0 + timedelta(hours=20)
    assert "已不再相同" in summary(closed[0], "zh", REGISTRY)


def test_two_pollutants_of_one_outlet_and_the_arrival_order_does_not_matter() -> None:
    rng = random.Random(5)
    values = [round(rng.uniform(20, 40), 1) for _ in range(8)]
    so2 = [hour(h, v) for h, v in enumerate(values)]
    nox = [hour(h, v, code="a21002") for h, v in enumerate(values)]
    forward = feed(ValuesCopied(lambda: REGISTRY), so2 + nox)
    backward = feed(ValuesCopied(lambda: REGISTRY), list(reversed(nox)) + so2)
    assert {a.subject for a in forward} == {"copied:E1/DA001/a21002=DA001/a21026"}
    assert forward[0].id == backward[0].id
    assert forward[-1].evidence["equal_count"] == backward[-1].evidence["equal_count"] == 8


@pytest.mark.parametrize("seed", range(10))
def test_must_not_a_month_of_clean_hours_with_one_decimal_raises_nothing(seed: int) -> None:
    """Two stacks of one plant, SO2, NOx and dust, each with its own level and variation, sent
    with one decimal: equal values happen now and then, never 6 of 12 hours."""
    rule = ValuesCopied(lambda: REGISTRY)
    rng = random.Random(seed)
    points = []
    for h in range(24 * 30):
        for mn in (MN1, MN2):
            points.append(hour(h, round(rng.gauss(25, 3), 1), mn=mn))
            points.append(hour(h, round(rng.gauss(28, 4), 1), mn=mn, code="a21002"))
            points.append(hour(h, round(rng.gauss(4, 0.6), 1), mn=mn, code="a34013"))
    assert feed(rule, points) == []


def test_must_not_zeros_invalid_hours_o2_or_another_enterprise_raise_nothing() -> None:
    rule = ValuesCopied(lambda: REGISTRY)
    zeros = [hour(h, 0.0, mn=m) for h in range(0, 12) for m in (MN1, MN2)]
    flagged = [hour(h, 12.5, mn=m, flag="M") for h in range(12, 24) for m in (MN1, MN2)]
    o2 = [hour(h, 20.9, mn=m, code="a19001") for h in range(24, 36) for m in (MN1, MN2)]
    other_ent = [hour(h, 17.0 + h, mn=m) for h in range(36, 48) for m in (MN1, MN3)]
    assert feed(rule, zeros + flagged + o2 + other_ent) == []


def test_per_outlet_thresholds_and_a_repeated_record_counts_once() -> None:
    rule = ValuesCopied(lambda: REGISTRY)
    so2 = [hour(h, 30.0 + h, mn=MN3) for h in range(3)]
    nox = [hour(h, 30.0 + h, mn=MN3, code="a21002") for h in range(3)]
    out = feed(rule, so2 + so2 + nox)  # DA001 of E2: 3 of 4 hours
    assert [a.subject for a in out] == ["copied:E2/DA001/a21002=DA001/a21026"]
    assert out[0].evidence["equal_count"] == 3 and out[0].evidence["copied_hours"] == 3
    assert feed(rule, nox) == []  # the same records again change nothing


def test_a_restart_carries_an_open_copy_on() -> None:
    rng = random.Random(7)
    anomaly = feed(ValuesCopied(lambda: REGISTRY), copied_stack(rng, range(0, 8)))[-1]
    rule = ValuesCopied(lambda: REGISTRY)
    rule.restore([anomaly])
    after = feed(rule, copied_stack(rng, range(8, 10)))
    assert after and {(a.id, a.state) for a in after} == {(anomaly.id, "open")}
    assert after[-1].evidence["equal_count"] == 10
