"""emission_during_shutdown: flow above the stopped level under a shutdown, after the grace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import OrderSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.emission_shutdown import EmissionDuringShutdown

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MN = "MN0000000000000000000003"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "lines": [{"id": "L1"}, {"id": "L2"}],
                    "outlets": [
                        {
                            "id": "DA1",
                            "mn": MN,
                            "password": "x",
                            "stopped_flow": 2.0,
                            "lines": ["L1", "L2"],
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


def order(regime: Regime, lines: list[str]) -> None:
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "shutdown",
                "enterprise": "E1",
                "lines": lines,
                "starts_at": T0,
                "ends_at": T0 + timedelta(days=1),
            }
        )
    )


def flow(minute: float, value: float, flag: str = "N") -> Point:
    tags = (
        ("enterprise", "E1"),
        ("outlet", "DA1"),
        ("mn", MN),
        ("pollutant", "a00000"),
        ("interval", "rtd"),
    )
    return Point(
        "emission", tags, (("rtd", value), ("flag", flag)), to_ns(T0 + timedelta(minutes=minute))
    )


def feed(
    rule: EmissionDuringShutdown, minutes: range, value: float, flag: str = "N"
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        out += rule.on_points([flow(minute, value, flag)], T0)
    return out


def test_flow_after_grace_under_shutdown_opens_and_closes(regime: Regime) -> None:
    order(regime, [])  # all lines
    rule = EmissionDuringShutdown(lambda: REGISTRY, regime)
    assert feed(rule, range(0, 120, 5), 30.0) == []  # grace
    (opened,) = feed(rule, range(120, 140, 5), 30.0)
    assert opened.started_at == T0 + timedelta(hours=2)
    assert opened.evidence["flow"] == 30.0 and opened.evidence["stopped_flow"] == 2.0
    (closed,) = feed(rule, range(140, 141), 1.5)
    assert closed.state == "closed" and closed.ended_at == T0 + timedelta(minutes=140)


def test_near_misses(regime: Regime) -> None:
    order(regime, ["L1"])  # L2 still allowed to run: the outlet is not fully covered
    rule = EmissionDuringShutdown(lambda: REGISTRY, regime)
    assert feed(rule, range(120, 200, 5), 30.0) == []
    order(regime, ["L2"])  # now both lines are stopped
    assert feed(rule, range(200, 260, 5), 1.0) == []  # at the stopped level
    assert feed(rule, range(260, 320, 5), 30.0, flag="M") == []  # maintenance values
    assert len(feed(rule, range(320, 340, 5), 30.0)) == 1
