"""A withdrawn shutdown order no longer counts: production_during_shutdown closes what it
opened under it and opens nothing after the withdrawal; before it, the order still held."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.regime import Order, OrderSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.shutdown import ProductionDuringShutdown

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # the order starts here; grace ends at T0 + 2 h
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                    "lines": [{"id": "L1"}],
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


def shutdown(regime: Regime) -> Order:
    return regime.add_order(
        OrderSpec(
            kind="shutdown",
            enterprise="E1",
            lines=["L1"],
            starts_at=T0,
            ends_at=T0 + timedelta(days=1),
        ),
        issued_by="chief",
    )


def feed(rule: ProductionDuringShutdown, minutes: range, running: bool = True) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        tags = (("enterprise", "E1"), ("meter", "P1"), ("role", "production"), ("line", ""))
        fields = (("p_kw", 300.0 if running else 2.0), ("running", running))
        point = Point("power", tags, fields, to_ns(T0 + timedelta(minutes=minute)))
        out += rule.on_points([point], T0)
    return out


def test_a_withdrawn_order_closes_its_anomaly_and_opens_no_more(regime: Regime) -> None:
    order = shutdown(regime)
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    opened = feed(rule, range(120, 140, 5))
    assert [a.state for a in opened] == ["open"]
    regime.withdraw_order(order.id, by="chief", at=T0 + timedelta(hours=3), reason="企业已整改")
    assert feed(rule, range(140, 180, 5)) == []  # before the withdrawal the order held
    (closed,) = feed(rule, range(180, 181))  # the first reading after it: no shutdown any more
    assert closed.id == opened[0].id and closed.state == "closed"
    assert closed.ended_at == T0 + timedelta(hours=3)
    assert feed(rule, range(185, 600, 5)) == []  # the line runs on: nothing is due


def test_an_order_withdrawn_before_its_grace_ended_never_opens_anything(regime: Regime) -> None:
    order = shutdown(regime)
    regime.withdraw_order(order.id, by="chief", at=T0 + timedelta(hours=1), reason="误发")
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert feed(rule, range(0, 24 * 60, 5)) == []
