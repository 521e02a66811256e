"""Dated limits: a pollutant limit that changes from a date (a special limit, ultra-low from a
deadline) or tightens while a plan key is in force (a control period, an alert level) is judged
as in force at each hour; the evidence names the limit that applied and what tightened it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.regime import AlertSpec, Regime
from gateway.registry import PollutantLimit, Registry, RegistryFile
from gateway.rules.over_limit import OverLimit
from tests.rules.test_rules import MN, T0, hourly

# T0 is 2026-03-01 08:00 Beijing; from 2026-03-01 10:00 Beijing the COD limit is 30, not 50
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "outlets": [
                        {
                            "id": "DA001",
                            "mn": MN,
                            "password": "123456",
                            "pollutants": {
                                "w01018": {
                                    "limit": 50,
                                    "changes": [
                                        {"since": "2026-03-01T10:00:00", "limit": 30},
                                        {"since": "2026-03-02", "limit": 20},
                                    ],
                                }
                            },
                        }
                    ],
                }
            ]
        }
    )
)
CST = timezone(timedelta(hours=8))


def test_the_limit_in_force_is_the_one_of_each_hour() -> None:
    limit = REGISTRY.device(MN).outlet.pollutants["w01018"]  # type: ignore[union-attr]
    assert limit.at(None).limit == 50  # the first one
    assert limit.at(datetime(2026, 3, 1, 9, 59, tzinfo=CST)).limit == 50
    assert limit.at(datetime(2026, 3, 1, 10, 0, tzinfo=CST)).limit == 30
    assert limit.at(datetime(2026, 3, 2, 0, 0, tzinfo=CST)).limit == 20  # a date: Beijing 00:00
    assert limit.changes[1].since == datetime(2026, 3, 2, tzinfo=CST)


def test_an_hour_within_the_old_limit_and_over_the_new_one_is_over_after_the_date() -> None:
    rule = OverLimit(lambda: REGISTRY)
    # 08:00 and 09:00 Beijing at 40 mg/L: within 50; 10:00 and 11:00 at 40: over the new 30
    out = []
    for hour in range(4):
        out += rule.on_points([hourly("w01018", hour, avg=40.0)], T0)
    assert out and out[0].started_at == T0 + timedelta(hours=2)
    assert out[-1].evidence["limit"] == 30
    assert [h["hour"] for h in out[-1].evidence["hours"]] == [
        (T0 + timedelta(hours=h)).isoformat() for h in (2, 3)
    ]


def test_must_not_a_change_ahead_counts_before_its_date() -> None:
    rule = OverLimit(lambda: REGISTRY)
    assert rule.on_points([hourly("w01018", 1, avg=45.0)], T0) == []


def test_a_change_must_have_a_positive_limit() -> None:
    with pytest.raises(ValueError):
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E",
                        "outlets": [
                            {
                                "id": "O",
                                "mn": "M",
                                "password": "x",
                                "pollutants": {
                                    "a21026": {
                                        "limit": 35,
                                        "changes": [{"since": "2027-01-01", "limit": 0}],
                                    }
                                },
                            }
                        ],
                    }
                ]
            }
        )


# -- limits tightened during a control period ------------------------------------------------

TIGHTENED = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "region": "city-a",
                    "outlets": [
                        {
                            "id": "DA001",
                            "mn": MN,
                            "password": "123456",
                            "pollutants": {
                                "w01018": {
                                    "limit": 50,
                                    "control": {"orange": 35, "event": 20},
                                    "changes": [{"since": "2026-03-02", "limit": 40}],
                                }
                            },
                        }
                    ],
                }
            ]
        }
    )
)


def event(regime: Regime, start_h: int, end_h: int, **kind: str) -> str:
    """A control layer (or alert) over city-a, hours after T0."""
    spec = {"regions": ["city-a"], "starts_at": T0 + timedelta(hours=start_h)}
    spec |= {"ends_at": T0 + timedelta(hours=end_h), **(kind or {"layer": "event"})}
    return regime.add_alert(AlertSpec.model_validate(spec)).id


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    yield regime
    regime.close()


def test_an_hour_over_the_event_limit_but_under_the_normal_one_is_over_during_the_event(
    regime: Regime,
) -> None:
    ref = event(regime, 2, 4)
    rule = OverLimit(lambda: TIGHTENED, regime)
    out = []
    for hour in range(6):  # 30 mg/L every hour: over 20 only while the event is in force
        out += rule.on_points([hourly("w01018", hour, avg=30.0)], T0)
    opened, merged, closed = out
    assert opened.started_at == T0 + timedelta(hours=2) and opened.severity == "alarm"
    assert opened.evidence["limit"] == 20
    assert opened.evidence["tightened_by"] == {
        "plan_key": "event",
        "limit": 20,
        "normal_limit": 50,
        "source": {
            "kind": "alert plan",
            "ref": ref,
            "level": "event",
            "starts_at": (T0 + timedelta(hours=2)).isoformat(),
            "ends_at": (T0 + timedelta(hours=4)).isoformat(),
        },
    }
    assert [h["limit"] for h in merged.evidence["hours"]] == [20, 20]
    assert closed.state == "closed" and closed.ended_at == T0 + timedelta(hours=4)


def test_must_not_the_same_hours_outside_the_event(regime: Regime) -> None:
    event(regime, 10, 12)
    rule = OverLimit(lambda: TIGHTENED, regime)
    for hour in range(6):
        assert rule.on_points([hourly("w01018", hour, avg=30.0)], T0) == []
    assert OverLimit(lambda: TIGHTENED).on_points([hourly("w01018", 11, avg=30.0)], T0) == []


def test_the_tightest_key_in_force_governs_and_a_dated_limit_still_applies(
    regime: Regime,
) -> None:
    event(regime, 0, 48, level="orange")
    rule = OverLimit(lambda: TIGHTENED, regime)
    [orange] = rule.on_points([hourly("w01018", 0, avg=36.0)], T0)
    assert orange.evidence["tightened_by"]["plan_key"] == "orange"
    assert orange.evidence["limit"] == 35
    event(regime, 0, 48)  # the event layer too: 20 is tighter than orange's 35
    [closed, event_hour] = rule.on_points([hourly("w01018", 2, avg=25.0)], T0)
    assert closed.state == "closed" and event_hour.evidence["tightened_by"]["plan_key"] == "event"


def test_a_control_limit_at_or_above_the_dated_limit_does_not_loosen_it(regime: Regime) -> None:
    # from 2026-03-02 (Beijing) the limit is 40: orange's 35 still tightens, a 45 would not
    event(regime, 0, 72, level="orange")
    rule = OverLimit(lambda: TIGHTENED, regime)
    day2 = 17  # 2026-03-02 01:00 Beijing
    [over] = rule.on_points([hourly("w01018", day2, avg=38.0)], T0)
    assert over.evidence["limit"] == 35
    loose = TIGHTENED.data.model_copy(deep=True)
    loose.enterprises[0].outlets[0].pollutants["w01018"].control = {"orange": 45}
    rule = OverLimit(lambda: Registry(loose), regime)
    [normal] = rule.on_points([hourly("w01018", day2, avg=42.0)], T0)
    assert normal.evidence["limit"] == 40 and "tightened_by" not in normal.evidence


def test_a_control_limit_must_be_positive_and_under_a_plan_key() -> None:
    for control in ({"event": 0}, {"purple": 20}):
        with pytest.raises(ValueError):
            PollutantLimit.model_validate({"limit": 50, "control": control})
