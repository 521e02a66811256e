"""banned_vehicle_entry against a real regime store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.vehicles import BannedVehicleEntry

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "gates": [{"id": "G1"}],
                    "whitelist": [
                        {
                            "plate": "冀A00001",
                            "valid_from": "2026-11-01T00:00:00+08:00",
                            "valid_to": "2027-01-01T00:00:00+08:00",
                            "reason": "hazardous goods",
                        }
                    ],
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


def alert(regime: Regime, level: str, **cover: list[str]) -> None:
    regime.add_alert(
        AlertSpec.model_validate(
            {
                "level": level,
                "starts_at": T0 - timedelta(hours=1),
                "ends_at": T0 + timedelta(hours=1),
                **cover,
            }
        )
    )


def passage(
    plate: str,
    stage: str,
    fuel: str = "diesel",
    cls: str = "heavy",
    direction: str = "in",
    minutes: int = 0,
) -> Point:
    tags = (
        ("enterprise", "E1"),
        ("gate", "G1"),
        ("direction", direction),
        ("emission_stage", stage),
        ("fuel", fuel),
        ("vehicle_class", cls),
    )
    at = T0 + timedelta(minutes=minutes)
    return Point(
        "vehicle_passage", tags, (("plate", plate), ("stage_raw", f"国{stage}")), to_ns(at)
    )


def test_guo4_diesel_heavy_truck_under_orange_is_banned(regime: Regime) -> None:
    alert(regime, "orange", regions=["city-a"])
    rule = BannedVehicleEntry(lambda: REGISTRY, regime)
    (anomaly,) = rule.on_points([passage("冀A12345", "4")], T0)
    assert (anomaly.type, anomaly.severity, anomaly.subject) == (
        "banned_vehicle_entry",
        "alarm",
        "gate:E1/G1/冀A12345",
    )
    assert anomaly.evidence["plate"] == "冀A12345" and anomaly.evidence["level"] == "orange"
    assert anomaly.state == "closed" and anomaly.started_at == anomaly.ended_at == T0


@pytest.mark.parametrize(
    ("level", "point"),
    [
        ("orange", passage("冀A12345", "5")),  # 国五 under orange: allowed
        ("orange", passage("冀A12345", "4", fuel="gasoline")),
        ("orange", passage("冀A12345", "4", cls="light")),
        ("orange", passage("冀A12345", "4", direction="out")),
        ("orange", passage("冀A00001", "3")),  # whitelisted
        ("orange", passage("冀A12345", "")),  # stage unknown: no evidence of a ban
        ("yellow", passage("冀A12345", "4")),  # yellow bans nothing by default
        ("orange", passage("冀A12345", "4", minutes=61)),  # after the alert's window
    ],
)
def test_near_misses_are_allowed(regime: Regime, level: str, point: Point) -> None:
    alert(regime, level, enterprises=["E1"])
    assert BannedVehicleEntry(lambda: REGISTRY, regime).on_points([point], T0) == []


def test_no_alert_no_ban(regime: Regime) -> None:
    alert(regime, "red", regions=["another-city"])
    assert BannedVehicleEntry(lambda: REGISTRY, regime).on_points([passage("冀A1", "2")], T0) == []


def test_calendar_control_period_bans_like_an_alert(regime: Regime) -> None:
    from gateway.regime import Alert
    from gateway.registry import ControlPeriod

    period = ControlPeriod.model_validate(
        {
            "name": "games",
            "level": "red",
            "regions": ["city-a"],
            "windows": [[T0 - timedelta(days=1), T0 + timedelta(days=1)]],
        }
    )
    regime.calendar = lambda: [
        Alert(
            id="period:games:0",
            level=period.level,
            regions=period.regions,
            starts_at=period.windows[0][0],
            ends_at=period.windows[0][1],
        )
    ]
    (anomaly,) = BannedVehicleEntry(lambda: REGISTRY, regime).on_points([passage("冀A3", "3")], T0)
    assert anomaly.evidence["level"] == "red" and anomaly.evidence["alert_id"] == "period:games:0"
    assert (anomaly.evidence["source"]["kind"], anomaly.evidence["source"]["ref"]) == (
        "control period",
        "games",
    )


def test_control_period_needs_a_scope_and_sane_windows() -> None:
    from pydantic import ValidationError

    from gateway.registry import ControlPeriod

    with pytest.raises(ValidationError, match="covers no region"):
        ControlPeriod.model_validate(
            {"name": "x", "level": "orange", "windows": [[T0, T0 + timedelta(hours=1)]]}
        )
    with pytest.raises(ValidationError, match="end after start"):
        ControlPeriod.model_validate(
            {"name": "x", "level": "orange", "regions": ["a"], "windows": [[T0, T0]]}
        )


def test_a_permit_matches_the_gate_s_spelling_of_its_plate(regime: Regime) -> None:
    registry = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E1",
                        "region": "city-a",
                        "gates": [{"id": "G1"}],
                        "whitelist": [
                            {
                                "plate": "冀A·12345",  # as the permit is written
                                "valid_from": "2026-11-01T00:00:00+08:00",
                                "valid_to": "2027-01-01T00:00:00+08:00",
                            }
                        ],
                    }
                ]
            }
        )
    )
    alert(regime, "orange", regions=["city-a"])
    rule = BannedVehicleEntry(lambda: registry, regime)
    assert rule.on_points([passage(" 冀a12345", "4")], T0) == []
    (anomaly,) = rule.on_points([passage(" 冀a12346", "4")], T0)  # another truck: still banned
    assert anomaly.evidence["plate"] == "冀A12346"
    assert anomaly.subject == "gate:E1/G1/冀A12346"
    verdicts = [p.field("allowed") for p in rule.take_verdicts()]
    assert verdicts == [True, False]
