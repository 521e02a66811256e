"""flow_mismatch and dilution: the stack against the production meters; must-not cases on a
realistic day (production by day with its flow, stopped at night, ramps shorter than the
persistence) and under a shutdown order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import OrderSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.mismatch import OperatingMismatch

T0 = datetime(2026, 11, 10, tzinfo=UTC)
MN = "MN00000000000000000000X1"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "铸造一厂",
                    "region": "city-a",
                    "lines": [{"id": "L1"}],
                    "meters": [
                        {"id": "P1", "role": "production", "line": "L1", "on_threshold_kw": 50}
                    ],
                    "outlets": [
                        {
                            "id": "DA001",
                            "mn": MN,
                            "password": "x",
                            "lines": ["L1"],
                            "stopped_flow": 2.0,
                        }
                    ],
                }
            ]
        }
    )
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "r.sqlite")
    yield regime
    regime.close()


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def power(minute: int, kw: float) -> Point:
    tags = (("enterprise", "E1"), ("meter", "P1"))
    return Point("power", tags, (("p_kw", kw), ("running", kw >= 50)), to_ns(at(minute)))


def record(minute: float, code: str, value: float, interval: str = "rtd") -> Point:
    field = "rtd" if interval == "rtd" else "avg"
    tags = (("mn", MN), ("pollutant", code), ("interval", interval))
    return Point("emission", tags, ((field, value), ("flag", "N")), to_ns(at(minute)))


def run(
    rule: OperatingMismatch,
    minutes: range,
    kw: float | None,
    flow: float | None,
    rng: random.Random,
) -> list[Anomaly]:
    """Each minute: the meter every 5 minutes (None: silent), the flow's real-time value."""
    out: list[Anomaly] = []
    for m in minutes:
        points = []
        if kw is not None and m % 5 == 0:
            points.append(power(m, kw * rng.uniform(0.9, 1.0)))
        if flow is not None:
            points.append(record(m, "a00000", max(0.0, flow + rng.gauss(0, flow * 0.05 + 0.1))))
        out += rule.on_points(points, at(m))
    return out


def test_no_flow_while_the_line_produces(regime: Regime) -> None:
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    rng = random.Random(1)
    assert run(rule, range(0, 60), 320.0, 45.0, rng) == []
    out = run(rule, range(60, 100), 320.0, 0.5, rng)
    assert [a.state for a in out] == ["open"]
    anomaly = out[0]
    assert (anomaly.type, anomaly.subject, anomaly.started_at) == (
        "flow_mismatch",
        "outlet:E1/DA001:no_flow",
        at(60),
    )
    assert anomaly.evidence["stopped_flow"] == 2.0 and anomaly.evidence["running_by"] == "meters"
    assert anomaly.evidence["production"][0]["running"] is True
    text = summary(anomaly, "zh", REGISTRY)
    assert text.startswith("铸造一厂 废气排放口DA001自") and "疑似经旁路排放" in text, text
    closed = run(rule, range(100, 105), 320.0, 45.0, rng)
    assert [a.state for a in closed] == ["closed"] and closed[0].ended_at == at(100)


def test_flow_while_no_line_produces_and_not_under_a_shutdown(regime: Regime) -> None:
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    rng = random.Random(2)
    out = run(rule, range(0, 40), 2.0, 40.0, rng)
    assert [(a.subject, a.started_at) for a in out] == [("outlet:E1/DA001:flow_idle", at(0))]
    assert "生产电表未反映实际工况" in summary(out[0], "zh", REGISTRY)


def test_must_not_flow_under_a_shutdown_is_left_to_emission_during_shutdown(
    regime: Regime,
) -> None:
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "shutdown",
                "enterprise": "E1",
                "lines": ["L1"],
                "starts_at": T0 - timedelta(hours=1),
                "ends_at": T0 + timedelta(days=1),
            }
        )
    )
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    assert run(rule, range(0, 60), 2.0, 40.0, random.Random(3)) == []


def test_must_not_a_day_of_production_with_its_ramps_raises_nothing(regime: Regime) -> None:
    """Production 06:00-22:00 with flow 45, stopped at night with the fan idling under the
    stopped level; the flow takes 10 minutes to follow each start and stop."""
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    rng = random.Random(4)
    out: list[Anomaly] = []
    for m in range(24 * 60):
        producing = 6 * 60 <= m < 22 * 60
        since = m - 6 * 60 if producing else (m - 22 * 60) % (24 * 60)
        ramp = min(1.0, since / 10)
        flow = 45.0 * ramp if producing else 45.0 * (1 - ramp) + 0.5 * ramp
        points = [record(m, "a00000", max(0.0, flow + rng.gauss(0, 0.3)))]
        if m % 5 == 0:
            points.append(power(m, 320.0 if producing else 2.0))
        out += rule.on_points(points, at(m))
    assert out == []


def test_records_wait_for_the_meters_to_report_up_to_their_time(regime: Regime) -> None:
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    rule.on_points([power(0, 320.0)], at(0))
    early = [rule.on_points([record(m, "a00000", 0.4)], at(m)) for m in range(1, 40)]
    assert all(batch == [] for batch in early)  # the meter has not reported past minute 0
    out = rule.on_points([power(40, 320.0)], at(40))
    assert [a.subject for a in out] == ["outlet:E1/DA001:no_flow"]
    assert out[0].started_at == at(1)


def o2_hours(rule: OperatingMismatch, hours: range, o2: float, kw: float) -> list[Anomaly]:
    out: list[Anomaly] = []
    rng = random.Random(hours.start)
    for h in hours:
        minute = h * 60
        out += rule.on_points([power(minute, kw), power(minute + 55, kw)], at(minute + 55))
        value = o2 + rng.gauss(0, 0.4)
        out += rule.on_points([record(minute, "a19001", value, "hour")], at(minute + 56))
    return out


def test_dilution_o2_far_above_the_outlet_s_normal_while_producing(regime: Regime) -> None:
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    assert o2_hours(rule, range(0, 48), 10.5, 320.0) == []  # two days make its normal
    out = o2_hours(rule, range(48, 54), 16.0, 320.0)
    assert [a.state for a in out] == ["open"]
    anomaly = out[0]
    assert (anomaly.type, anomaly.subject, anomaly.started_at) == (
        "dilution",
        "outlet:E1/DA001:dilution",
        at(48 * 60),
    )
    assert 10.0 < anomaly.evidence["normal_o2"] < 11.0 and anomaly.evidence["o2_rise"] == 3.0
    assert anomaly.evidence["pollutant"] == "a19001"
    text = summary(anomaly, "zh", REGISTRY)
    assert "疑似稀释排放" in text and "个百分点以上" in text, text
    closed = o2_hours(rule, range(54, 56), 10.5, 320.0)
    assert [a.state for a in closed] == ["closed"]


def test_must_not_o2_of_a_stopped_plant_or_a_small_rise_raises_nothing(regime: Regime) -> None:
    rule = OperatingMismatch(lambda: REGISTRY, regime)
    out = o2_hours(rule, range(0, 48), 10.5, 320.0)
    out += o2_hours(rule, range(48, 60), 20.9, 2.0)  # stopped: air
    out += o2_hours(rule, range(60, 72), 12.5, 320.0)  # 2 points up: within the normal band
    out += o2_hours(rule, range(72, 74), 16.0, 320.0)  # 2 h only: under 2 h of persistence
    out += o2_hours(rule, range(74, 80), 10.5, 320.0)
    assert out == []
