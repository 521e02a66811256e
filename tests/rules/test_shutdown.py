"""production_during_shutdown: explicit orders and alert plans, grace, persistence, closing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, OrderSpec, Regime
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
