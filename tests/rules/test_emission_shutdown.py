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


def test_a_stack_reporting_itself_stopped_with_flag_f_closes_it(regime: Regime) -> None:
    order(regime, [])
    rule = EmissionDuringShutdown(lambda: REGISTRY, regime)
    (opened,) = feed(rule, range(120, 140, 5), 30.0)
    assert feed(rule, range(140, 150, 5), 30.0, flag="D") == []  # a fault flag says nothing
    (closed,) = feed(rule, range(150, 151), 0.4, flag="F")
    assert closed.id == opened.id and closed.ended_at == T0 + timedelta(minutes=150)
    assert closed.evidence["closed_as"] == "stopped (flag F)"
    assert feed(rule, range(155, 200, 5), 0.3, flag="F") == []  # stays stopped: nothing more


def test_the_end_of_the_shutdown_closes_it_whatever_the_flag(regime: Regime) -> None:
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "shutdown",
                "enterprise": "E1",
                "starts_at": T0,
                "ends_at": T0 + timedelta(hours=3),
            }
        )
    )
    rule = EmissionDuringShutdown(lambda: REGISTRY, regime)
    (_opened,) = feed(rule, range(120, 140, 5), 30.0)
    assert feed(rule, range(140, 180, 5), 30.0, flag="M") == []
    (closed,) = feed(rule, range(180, 181), 30.0, flag="M")  # released at 3 h
    assert closed.ended_at == T0 + timedelta(hours=3) and closed.evidence["closed_as"] == "released"


def test_hourly_means_of_a_device_that_sends_finer_values_are_not_judged(regime: Regime) -> None:
    order(regime, [])
    rule = EmissionDuringShutdown(lambda: REGISTRY, regime)
    (_opened,) = feed(rule, range(120, 140, 5), 30.0)
    assert feed(rule, range(140, 141), 1.0) != []  # stopped at 140 min
    hourly = flow(120, 18.0)._replace(
        tags=(*flow(0, 0).tags[:-1], ("interval", "hour")), fields=(("avg", 18.0), ("flag", "N"))
    )
    assert rule.on_points([hourly], T0) == []  # the mean of 02:00-03:00 does not reopen it


OLD_MN = "MN0000000000000000002005"
OLD = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "lines": [{"id": "L1"}],
                    "outlets": [
                        {
                            "id": "DB1",
                            "mn": OLD_MN,
                            "password": "x",
                            "version": "2005",
                            "stopped_flow": 2.0,
                            "lines": ["L1"],
                        }
                    ],
                }
            ]
        }
    )
)


def test_a_2005_logger_reports_its_flue_gas_flow_as_b02(regime: Regime) -> None:
    order(regime, [])
    rule = EmissionDuringShutdown(lambda: OLD, regime)
    out: list[Anomaly] = []
    for minute in range(120, 140, 5):
        point = flow(minute, 30.0)
        tags = (("enterprise", "E1"), ("outlet", "DB1"), ("mn", OLD_MN), ("pollutant", "B02"))
        out += rule.on_points([point._replace(tags=(*tags, ("interval", "rtd")))], T0)
    assert [(a.subject, a.started_at) for a in out] == [("outlet:E1/DB1", T0 + timedelta(hours=2))]
