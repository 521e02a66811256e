"""Dated limits: a pollutant limit that changes from a date (a special limit, ultra-low from a
deadline) is judged as in force at each hour; the evidence names the limit that applied."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.registry import Registry, RegistryFile
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
