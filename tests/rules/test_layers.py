"""Layers of control: an event control period (赛时管控) with plans of its own, a reinforced
layer (应急强化) on top of it, and a blue level; every plan key in force applies, the deepest cut
governs. Must-not cases: a neighbour without the layer's plan, a line the layer does not name,
the reinforced plan before the reinforced layer starts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, Regime, period_alerts
from gateway.registry import Registry, RegistryFile
from gateway.rules.obligation import curtailment_sources
from gateway.rules.shutdown import ProductionDuringShutdown

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def _window(start_h: float, end_h: float) -> list[datetime]:
    return [T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h)]


ENTERPRISE: dict[str, Any] = {
    "id": "E1",
    "name": "钢铁一厂",
    "region": "city-a",
    "meters": [
        {"id": "P1", "role": "production", "line": "L1"},
        {"id": "P2", "role": "production", "line": "L2"},
    ],
    "lines": [{"id": "L1"}, {"id": "L2"}],
    "plans": {
        "orange": {"curtail": {"L1": 30}},
        "event": {"stop_lines": ["L1"], "curtail": {"L2": 20}},
        "reinforced": {"stop_lines": ["L2"], "responsible": "张伟", "contact": "13800000000"},
        "blue": {"curtail": {"L2": 10}},
    },
}
NEIGHBOUR: dict[str, Any] = {  # under the same periods, with no plan for the layers
    **ENTERPRISE,
    "id": "E2",
    "name": "钢铁二厂",
    "plans": {"orange": {"curtail": {"L1": 30}}},
}
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [ENTERPRISE, NEIGHBOUR],
            "control_periods": [
                {
                    "name": "运动会",
                    "layer": "event",
                    "regions": ["city-a"],
                    "windows": [_window(0, 24)],
                },
                {
                    "name": "运动会开幕",
                    "layer": "reinforced",
                    "regions": ["city-a"],
                    "windows": [_window(6, 12)],
                },
            ],
        }
    )
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    regime.calendar = lambda: period_alerts(REGISTRY.data.control_periods)
    yield regime
    regime.close()


def run(
    rule: ProductionDuringShutdown, meter: str, minutes: range, ent: str = "E1"
) -> list[Anomaly]:
    line = {"P1": "L1", "P2": "L2"}[meter]
    out: list[Anomaly] = []
    for minute in minutes:
        tags = (("enterprise", ent), ("meter", meter), ("role", "production"), ("line", line))
        fields = (("p_kw", 300.0), ("running", True))
        out += rule.on_points(
            [Point("power", tags, fields, to_ns(T0 + timedelta(minutes=minute)))], T0
        )
    return out


def test_an_event_period_applies_its_own_plan(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    found = run(rule, "P1", range(0, 4 * 60, 5))
    assert found and {a.subject for a in found} == {"line:E1/L1"}
    first = found[0]
    assert first.started_at == T0 + timedelta(hours=2)  # the 2 h grace from the period's start
    (source,) = first.evidence["shutdown"]["sources"]
    assert (source["kind"], source["ref"], source["level"]) == ("control period", "运动会", "event")
    text = summary(first, "zh", REGISTRY)
    assert "运动会（赛时管控）" in text
    assert "UTC" not in text


def test_must_not_a_neighbour_without_the_layers_plan_or_a_line_it_does_not_stop(
    regime: Regime,
) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert run(rule, "P1", range(0, 4 * 60, 5), ent="E2") == []
    assert run(rule, "P2", range(0, 6 * 60, 5)) == []  # the event plan only curtails L2


def test_the_reinforced_layer_adds_its_plan_on_top_of_the_event(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    found = run(rule, "P2", range(5 * 60, 11 * 60, 5))
    opened = [a for a in found if a.state == "open"]
    assert opened and opened[0].started_at == T0 + timedelta(hours=8)  # 06:00 + 2 h grace
    (source,) = opened[0].evidence["shutdown"]["sources"]
    assert (source["ref"], source["level"]) == ("运动会开幕", "reinforced")
    assert "应急强化" in summary(opened[0], "zh", REGISTRY)
    (closed,) = run(rule, "P2", range(12 * 60, 12 * 60 + 1))  # the reinforced layer ended
    assert closed.state == "closed" and closed.ended_at == T0 + timedelta(hours=12)


def test_every_key_in_force_applies_and_the_deepest_cut_governs(regime: Regime) -> None:
    regime.add_alert(
        AlertSpec(
            level="orange", regions=["city-a"], starts_at=T0, ends_at=T0 + timedelta(hours=24)
        )
    )
    control = regime.in_force("E1", "city-a", T0 + timedelta(hours=7))
    assert control.level == "orange"
    assert control.layers == ["reinforced", "event"]
    assert control.plan_keys() == ["reinforced", "event", "orange"]
    ent = REGISTRY.enterprise("E1")
    assert ent is not None
    l2 = curtailment_sources(ent, "L2", control)
    assert [(s.level, s.percent) for s in l2] == [("event", 20)]
    # L1: the orange plan cuts 30 %; the event stops it (a shutdown, judged elsewhere)
    assert [(s.level, s.percent) for s in curtailment_sources(ent, "L1", control)] == [
        ("orange", 30)
    ]


def test_the_deepest_cut_first_when_two_keys_curtail_one_line(tmp_path: Path) -> None:
    registry = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E1",
                        "region": "city-a",
                        "lines": [{"id": "L1"}],
                        "plans": {"red": {"curtail": {"L1": 30}}, "event": {"curtail": {"L1": 50}}},
                    }
                ]
            }
        )
    )
    regime = Regime(tmp_path / "r.sqlite")
    try:
        for spec in (
            {"level": "red"},
            {"layer": "event"},
        ):
            regime.add_alert(
                AlertSpec.model_validate(
                    {
                        **spec,
                        "regions": ["city-a"],
                        "starts_at": T0,
                        "ends_at": T0 + timedelta(hours=5),
                    }
                )
            )
        ent = registry.enterprise("E1")
        assert ent is not None
        found = curtailment_sources(ent, "L1", regime.in_force("E1", "city-a", T0))
        assert [(s.level, s.percent) for s in found] == [("event", 50), ("red", 30)]
    finally:
        regime.close()


def test_blue_ranks_below_yellow(regime: Regime) -> None:
    later = T0 + timedelta(days=3)  # after the calendar periods
    regime.add_alert(
        AlertSpec(
            level="blue", regions=["city-a"], starts_at=later, ends_at=later + timedelta(hours=4)
        )
    )
    control = regime.in_force("E1", "city-a", later)
    assert (control.level, control.layers) == ("blue", [])
    ent = REGISTRY.enterprise("E1")
    assert ent is not None
    assert [(s.level, s.percent) for s in curtailment_sources(ent, "L2", control)] == [("blue", 10)]
    regime.add_alert(
        AlertSpec(
            level="yellow", regions=["city-a"], starts_at=later, ends_at=later + timedelta(hours=1)
        )
    )
    assert regime.in_force("E1", "city-a", later).level == "yellow"


def test_an_alert_needs_a_level_or_a_layer() -> None:
    with pytest.raises(ValidationError, match="a level, a layer or both"):
        AlertSpec(regions=["city-a"], starts_at=T0, ends_at=T0 + timedelta(hours=1))
    spec = AlertSpec(
        layer="reinforced", regions=["city-a"], starts_at=T0, ends_at=T0 + timedelta(hours=1)
    )
    assert (spec.level, spec.layer) == (None, "reinforced")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"control_periods": [{"name": "p", "regions": ["a"], "windows": [_window(0, 1)]}]},
            "needs a level, a layer or both",
        ),
        (
            {
                "control_periods": [
                    {"name": "p", "layer": "games", "regions": ["a"], "windows": [_window(0, 1)]}
                ]
            },
            "layer",
        ),
        ({"enterprises": [{"id": "E1", "plans": {"purple": {}}}]}, "purple"),
        ({"enterprises": [{"id": "E1", "transport": {"violet": {}}}]}, "violet"),
    ],
)
def test_registry_refuses_unknown_levels_and_layers(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RegistryFile.model_validate(data)
