"""production_during_shutdown: explicit orders and alert plans, grace, persistence, closing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, OrderSpec, Regime, period_alerts
from gateway.registry import Registry, RegistryFile
from gateway.rules.shutdown import ProductionDuringShutdown

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # orders start here; grace ends at T0 + 2 h
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "meters": [
                        {"id": "P1", "role": "production", "line": "L1"},
                        {"id": "P2", "role": "production", "line": "L2"},
                    ],
                    "lines": [{"id": "L1"}, {"id": "L2"}],
                    "plans": {"orange": {"stop_lines": ["L2"]}},
                }
            ]
        }
    )
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    yield regime
    regime.close()


def reading(meter: str, minute: float, running: bool) -> Point:
    tags = (("enterprise", "E1"), ("meter", meter), ("role", "production"), ("line", ""))
    fields = (("p_kw", 300.0 if running else 2.0), ("running", running))
    return Point("power", tags, fields, to_ns(T0 + timedelta(minutes=minute)))


def feed(
    rule: ProductionDuringShutdown, meter: str, minutes: range, running: bool = True
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        out += rule.on_points([reading(meter, minute, running)], T0)
    return out


def order(regime: Regime, lines: list[str]) -> None:
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "shutdown",
                "enterprise": "E1",
                "lines": lines,
                "starts_at": T0,
                "ends_at": T0 + timedelta(days=1),
                "note": "order 2026-17",
            }
        )
    )


def test_line_running_after_grace_under_an_order_opens_and_closes_when_it_stops(
    regime: Regime,
) -> None:
    order(regime, ["L1"])
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert feed(rule, "P1", range(0, 120, 5)) == []  # ramp-down grace: 2 h
    found = feed(rule, "P1", range(120, 140, 5))
    assert len(found) == 1
    anomaly = found[0]
    assert anomaly.started_at == T0 + timedelta(hours=2)
    assert anomaly.evidence["shutdown"]["source"] == "order"
    assert anomaly.evidence["production"][0]["p_kw"] == 300.0
    closed = feed(rule, "P1", range(150, 151), running=False)
    assert [(a.state, a.ended_at) for a in closed] == [("closed", T0 + timedelta(minutes=150))]


def test_alert_plan_stops_only_its_lines(regime: Regime) -> None:
    regime.add_alert(
        AlertSpec.model_validate(
            {
                "level": "orange",
                "regions": ["city-a"],
                "starts_at": T0,
                "ends_at": T0 + timedelta(days=1),
            }
        )
    )
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert feed(rule, "P1", range(120, 200, 5)) == []  # L1 is not in the orange plan
    found = feed(rule, "P2", range(120, 200, 5))
    assert len(found) == 1 and found[0].evidence["shutdown"]["source"] == "orange alert plan"


def test_near_misses(regime: Regime) -> None:
    order(regime, ["L1"])
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert feed(rule, "P1", range(120, 134, 1)) == []  # 14 min after the grace: not yet
    assert feed(rule, "P1", range(134, 135), running=False) == []
    assert feed(rule, "P2", range(120, 240, 5)) == []  # L2 has no order


# -- one obligation across its sources (orange then red, a period then an alert) -----------


def alert(regime: Regime, level: str, start_h: float, end_h: float) -> str:
    return regime.add_alert(
        AlertSpec.model_validate(
            {
                "level": level,
                "regions": ["city-a"],
                "starts_at": T0 + timedelta(hours=start_h),
                "ends_at": T0 + timedelta(hours=end_h),
            }
        )
    ).id


ESCALATING = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                    "lines": [{"id": "L1"}],
                    "plans": {"orange": {"stop_lines": ["L1"]}, "red": {"stop_lines": ["L1"]}},
                },
                {  # a neighbour under the same alerts, whose plan stops nothing
                    "id": "E2",
                    "region": "city-a",
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                    "lines": [{"id": "L1"}],
                },
            ],
            "control_periods": [
                {
                    "name": "games",
                    "level": "orange",
                    "regions": ["city-a"],
                    "windows": [[T0 + timedelta(hours=30), T0 + timedelta(hours=36)]],
                }
            ],
        }
    )
)


def readings(
    rule: ProductionDuringShutdown, minutes: range, running: bool = True, ent: str = "E1"
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        tags = (("enterprise", ent), ("meter", "P1"), ("role", "production"), ("line", "L1"))
        fields = (("p_kw", 300.0 if running else 2.0), ("running", running))
        point = Point("power", tags, fields, to_ns(T0 + timedelta(minutes=minute)))
        out += rule.on_points([point], T0)
    return out


def test_an_escalating_alert_over_a_line_that_never_stops_is_one_anomaly(regime: Regime) -> None:
    orange = alert(regime, "orange", 0, 3)
    red = alert(regime, "red", 3, 12)  # red follows without a gap: the obligation goes on
    rule = ProductionDuringShutdown(lambda: ESCALATING, regime)
    found = readings(rule, range(0, 10 * 60, 5))  # L1 runs through both, never stopping
    assert len(found) == 2  # opened under orange, updated when red joined: never closed
    first = found[0]
    assert first.started_at == T0 + timedelta(hours=2)  # grace from the orange start only
    assert all(a.id == first.id and a.state == "open" for a in found)
    kinds = [(s["kind"], s["ref"], s["level"]) for s in found[-1].evidence["shutdown"]["sources"]]
    assert kinds == [("alert plan", orange, "orange"), ("alert plan", red, "red")]
    assert found[-1].evidence["shutdown"]["since"] == T0.isoformat()
    (closed,) = readings(rule, range(12 * 60, 12 * 60 + 1))  # the red alert is over
    assert closed.state == "closed" and closed.ended_at == T0 + timedelta(hours=12)
    assert readings(rule, range(0, 10 * 60, 5), ent="E2") == []  # the neighbour has no plan


def test_a_control_period_then_an_alert_is_one_obligation(regime: Regime) -> None:
    alert(regime, "orange", 36, 40)  # from the end of the calendar period (30 h - 36 h)
    regime.calendar = lambda: period_alerts(ESCALATING.data.control_periods)
    rule = ProductionDuringShutdown(lambda: ESCALATING, regime)
    found = readings(rule, range(30 * 60, 39 * 60, 5))
    assert {a.id for a in found} == {found[0].id}
    assert found[0].started_at == T0 + timedelta(hours=32)  # grace from the period's start
    kinds = [s["kind"] for s in found[-1].evidence["shutdown"]["sources"]]
    assert kinds == ["control period", "alert plan"]
    assert found[-1].evidence["shutdown"]["sources"][0]["ref"] == "games"


def test_a_gap_between_two_alerts_restarts_the_grace(regime: Regime) -> None:
    alert(regime, "orange", 0, 3)
    alert(regime, "orange", 4, 10)  # one hour without any obligation in between
    rule = ProductionDuringShutdown(lambda: ESCALATING, regime)
    found = readings(rule, range(0, 9 * 60, 5))
    starts = sorted({a.started_at for a in found if a.state == "open"})
    assert starts == [T0 + timedelta(hours=2), T0 + timedelta(hours=6)]
    closed = [a for a in found if a.state == "closed"]
    assert [a.ended_at for a in closed] == [T0 + timedelta(hours=3)]


def test_a_meter_array_is_judged_reading_by_reading(regime: Regime) -> None:
    order(regime, ["L1"])
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    array = [reading("P1", minute, True) for minute in range(120, 150, 5)]  # one JSON array
    (opened,) = rule.on_points(array, T0)
    assert opened.started_at == T0 + timedelta(hours=2)
    assert opened.as_of == T0 + timedelta(minutes=135)  # opened at the reading 15 min in
    stop = [reading("P1", 150, True), reading("P1", 155, False), reading("P1", 160, False)]
    (closed,) = rule.on_points(stop, T0)
    assert closed.ended_at == T0 + timedelta(minutes=155)
