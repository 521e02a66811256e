"""curtailment_exceeded: energy over 4 h against the baseline of recent days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, OrderSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.curtailment import CurtailmentExceeded

START = datetime(2026, 12, 8, tzinfo=UTC)  # the curtailment starts here
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "lines": [{"id": "L1"}],
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                }
            ]
        }
    )
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "r.sqlite")
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "curtailment",
                "enterprise": "E1",
                "lines": ["L1"],
                "percent": 30,
                "starts_at": START,
                "ends_at": START + timedelta(days=2),
            }
        )
    )
    yield regime
    regime.close()


def reading(at: datetime, energy: float) -> Point:
    tags = (("enterprise", "E1"), ("meter", "P1"), ("role", "production"), ("line", "L1"))
    return Point(
        "power", tags, (("p_kw", energy), ("energy_kwh", energy), ("running", True)), to_ns(at)
    )


def hours(rule: CurtailmentExceeded, first: datetime, count: int, kwh: float) -> list[Anomaly]:
    out: list[Anomaly] = []
    for h in range(count):
        out += rule.on_points([reading(first + timedelta(hours=h, minutes=30), kwh)], START)
    return out


def with_history(regime: Regime) -> CurtailmentExceeded:
    rule = CurtailmentExceeded(lambda: REGISTRY, regime)
    for day in range(1, 4):  # three normal days: 1000 kWh an hour
        hours(rule, START - timedelta(days=day), 24, 1000.0)
    return rule


def test_exceeding_the_allowance_opens_and_complying_closes(regime: Regime) -> None:
    rule = with_history(regime)
    # allowed over 4 h: (1 - 0.30) x 4000 x 1.1 = 3080 kWh; 900 kWh an hour = 3600
    found = hours(rule, START, 6, 900.0)
    opened = [a for a in found if a.state == "open"]
    assert len(opened) == 1
    evidence = opened[0].evidence
    assert (evidence["baseline_kwh"], evidence["allowed_kwh"], evidence["energy_kwh"]) == (
        4000.0,
        3080.0,
        3600.0,
    )
    assert evidence["baseline_days"] == 3
    # window 00:00-04:00, judged at 04:30: hour 03 is complete, hour 04 is not
    assert opened[0].started_at == START
    closed = hours(rule, START + timedelta(hours=6), 6, 500.0)
    assert [a.state for a in closed] == ["closed"]


def test_near_misses(regime: Regime) -> None:
    rule = with_history(regime)
    assert hours(rule, START, 8, 760.0) == []  # 3040 kWh per 4 h: within 3080
    no_history = CurtailmentExceeded(lambda: REGISTRY, regime)
    assert hours(no_history, START, 8, 5000.0) == []  # no baseline day: no judgement


def test_five_minute_readings_open_once_without_flapping_at_hour_boundaries(
    regime: Regime,
) -> None:
    """A meter reporting every 5 minutes at full power: the window counts whole hours only, so
    the start of a new hour does not make the energy look low and close the anomaly."""
    rule = CurtailmentExceeded(lambda: REGISTRY, regime)

    def day(first: datetime, count: int) -> list[Anomaly]:
        out: list[Anomaly] = []
        for i in range(1, count + 1):  # each reading ends a 5-minute interval of 200 kW
            out += rule.on_points([reading(first + timedelta(minutes=5 * i), 200 / 12)], START)
        return out

    assert day(START - timedelta(days=1), 24 * 12) == []
    found = day(START, 10 * 12)
    assert [a.state for a in found] == ["open"]
    assert found[0].started_at == START
    assert found[0].as_of == START + timedelta(hours=4)  # judged at the first reading of 04:00
    assert found[0].evidence["energy_kwh"] == pytest.approx(800.0)


ESCALATING = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "lines": [{"id": "L1"}],
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                    "plans": {"orange": {"curtail": {"L1": 30}}, "red": {"curtail": {"L1": 50}}},
                }
            ]
        }
    )
)


@pytest.fixture
def escalating(tmp_path: Path) -> Iterator[CurtailmentExceeded]:
    """Orange (30 %) for a day from START, then red (50 %) for a day, without a break; three
    normal days of 1000 kWh an hour before."""
    regime = Regime(tmp_path / "escalating.sqlite")
    for level, start_h, end_h in (("orange", 0, 24), ("red", 24, 48)):
        regime.add_alert(
            AlertSpec.model_validate(
                {
                    "level": level,
                    "regions": ["city-a"],
                    "starts_at": START + timedelta(hours=start_h),
                    "ends_at": START + timedelta(hours=end_h),
                }
            )
        )
    rule = CurtailmentExceeded(lambda: ESCALATING, regime)
    for day in range(1, 4):
        hours(rule, START - timedelta(days=day), 24, 1000.0)
    yield rule
    regime.close()


def test_a_curtailment_that_escalates_over_days_keeps_the_baseline_of_before(
    escalating: CurtailmentExceeded,
) -> None:
    """The plant keeps to each cut (700 kWh an hour, then 540 within red's 50 % x 1.1
    allowance). The baseline is the normal days before the orange start, not the curtailed
    orange day, and the hours of a window spanning both alerts are each allowed the cut in
    force then."""
    assert hours(escalating, START, 24, 700.0) == []
    assert hours(escalating, START + timedelta(days=1), 24, 540.0) == []


def test_full_power_under_an_escalated_curtailment_opens(escalating: CurtailmentExceeded) -> None:
    assert hours(escalating, START, 24, 700.0) == []
    found = hours(escalating, START + timedelta(days=1), 8, 800.0)  # over red's 550 an hour
    opened = [a for a in found if a.state == "open"]
    assert len(opened) == 1
    assert opened[0].evidence["baseline_kwh"] == 4000.0
    assert [s["level"] for s in opened[0].evidence["sources"]] == ["orange", "red"]
