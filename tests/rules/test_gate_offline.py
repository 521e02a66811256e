"""device_offline for gates: silence counts only outside the gate's quiet hours (Beijing time);
a quiet night is not an anomaly, a gate system switched off by day is."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.registry import Registry, RegistryFile, quiet_window
from gateway.rules.offline import DeviceOffline, silent_seconds

CST = timezone(timedelta(hours=8))
START = datetime(2026, 11, 30, 6, 0, tzinfo=CST)  # a Monday, 06:00 Beijing time
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "焦化一厂",
                    "region": "city-a",
                    "gates": [
                        {"id": "G1", "name": "东门"},  # default: 4 h, quiet 22:00-06:00
                        {"id": "G2", "quiet_hours": [], "offline_after_s": 3600},
                        {"id": "G3", "quiet_hours": ["12:00-13:30", "20:00-07:00"]},
                    ],
                }
            ]
        }
    )
)


def passage(gate: str, at: datetime) -> Point:
    tags = (("enterprise", "E1"), ("gate", gate), ("direction", "in"))
    return Point("vehicle_passage", tags, (("plate", "冀A12345"),), to_ns(at))


def day_of_trucks(rule: DeviceOffline, rng: random.Random, day: datetime) -> list[Anomaly]:
    """Trucks every 5-40 min from 06:30 to 21:30 at each gate, ticks every 5 min all day."""
    out: list[Anomaly] = []
    moments = {g: day.replace(hour=6, minute=30) for g in ("G1", "G2", "G3")}
    tick = day
    end = day + timedelta(days=1)
    while tick < end:
        for gate, at in moments.items():
            if at <= tick and at.hour < 22 and at >= day.replace(hour=6, minute=30):
                out += rule.on_points([passage(gate, at)], at)
                moments[gate] = at + timedelta(minutes=rng.uniform(5, 40))
        out += rule.on_tick(tick)
        tick += timedelta(minutes=5)
    return out


def test_quiet_windows_parse_and_wrap_past_midnight() -> None:
    assert quiet_window("22:00-06:00") == (1320, 360)
    assert quiet_window("12:00-13:30") == (720, 810)
    for bad in ("24:00-01:00", "10:00-10:00", "9:00-10:00", "22:00"):
        with pytest.raises(ValueError):
            quiet_window(bad)
    night = ((1320, 360),)
    evening = datetime(2026, 11, 30, 21, 0, tzinfo=CST)
    assert silent_seconds(evening, evening + timedelta(hours=10), night) == 2 * 3600
    assert silent_seconds(evening, evening + timedelta(hours=10)) == 10 * 3600
    two_days = silent_seconds(evening, evening + timedelta(days=2), night)
    assert two_days == 2 * 16 * 3600


def test_must_not_a_week_of_busy_days_and_quiet_nights_raises_nothing() -> None:
    rule = DeviceOffline(lambda: REGISTRY, START.astimezone(UTC))
    rng = random.Random(1)
    out: list[Anomaly] = []
    for n in range(7):
        out += day_of_trucks(rule, rng, START.replace(hour=0) + timedelta(days=n))
    assert [a for a in out if a.subject.startswith("gate:E1/G1")] == []
    assert [a for a in out if a.subject.startswith("gate:E1/G3")] == []
    # G2 has no quiet hours and a 1 h threshold: every night is a silence, as configured
    assert {a.subject for a in out} == {"gate:E1/G2"}


def test_a_gate_switched_off_by_day_goes_offline_after_4_h_of_day_time() -> None:
    rule = DeviceOffline(lambda: REGISTRY, START.astimezone(UTC))
    last = START.replace(hour=9)
    rule.on_points([passage("G1", last)], last)
    assert [
        a for a in rule.on_tick(last + timedelta(hours=3, minutes=59)) if "G1" in a.subject
    ] == []
    opened = [a for a in rule.on_tick(last + timedelta(hours=4)) if "G1" in a.subject]
    assert len(opened) == 1
    anomaly = opened[0]
    assert (anomaly.type, anomaly.subject, anomaly.started_at) == (
        "device_offline",
        "gate:E1/G1",
        last,
    )
    assert anomaly.evidence["quiet_hours"] == ["22:00-06:00"]
    assert anomaly.evidence["threshold_s"] == 4 * 3600
    text = summary(anomaly, "zh", REGISTRY)
    assert text.startswith("焦化一厂 门禁东门") and "不计22:00-06:00的正常静默时段" in text, text
    closed = rule.on_points([passage("G1", last + timedelta(hours=5))], last + timedelta(hours=5))
    assert [a.state for a in closed] == ["closed"]


def test_silence_at_night_waits_for_the_morning() -> None:
    rule = DeviceOffline(lambda: REGISTRY, START.astimezone(UTC))
    last = START.replace(hour=20)  # the last truck at 20:00
    rule.on_points([passage("G1", last)], last)
    # 2 h of day time by 22:00, none overnight, 2 more by 08:00 the next day
    next_morning = START + timedelta(days=1)
    assert [
        a for a in rule.on_tick(next_morning + timedelta(hours=1, minutes=59)) if "G1" in a.subject
    ] == []
    assert [
        a.subject for a in rule.on_tick(next_morning + timedelta(hours=2)) if "G1" in a.subject
    ] == ["gate:E1/G1"]


def test_a_gate_s_status_follows_its_passages() -> None:
    rule = DeviceOffline(lambda: REGISTRY, START.astimezone(UTC))
    assert rule.online("gate:E1/G1") is None
    rule.on_points([passage("G1", START)], START)
    assert rule.online("gate:E1/G1") is True


def test_overlapping_quiet_hours_are_refused_and_unregistered_gates_are_not_kept() -> None:
    for windows in (["22:00-06:00", "00:00-07:00"], ["12:00-13:00", "12:30-14:00"]):
        with pytest.raises(ValueError, match="overlap"):
            RegistryFile.model_validate(
                {"enterprises": [{"id": "E", "gates": [{"id": "G", "quiet_hours": windows}]}]}
            )
    rule = DeviceOffline(lambda: REGISTRY, START.astimezone(UTC))
    strangers = [
        Point("vehicle_passage", (("enterprise", "E1"), ("gate", f"X{n}")), (("plate", "冀A1"),), 0)
        for n in range(100)
    ]
    rule.on_points(strangers, START)
    assert not any(s.startswith("gate:E1/X") for s in rule.last_contact)


def test_a_silent_gate_is_a_warning_first_and_an_alarm_after_twice_its_threshold() -> None:
    rule = DeviceOffline(lambda: REGISTRY, START.astimezone(UTC))
    last = START.replace(hour=7)
    rule.on_points([passage("G1", last)], last)
    (warning,) = [a for a in rule.on_tick(last + timedelta(hours=4)) if "G1" in a.subject]
    assert warning.severity == "warning"
    assert [a for a in rule.on_tick(last + timedelta(hours=7)) if "G1" in a.subject] == []
    # 07:00 to 15:00: 8 h of silence, none of it in the quiet hours
    (alarm,) = [a for a in rule.on_tick(last + timedelta(hours=8)) if "G1" in a.subject]
    assert (alarm.id, alarm.severity) == (warning.id, "alarm")


def test_a_gate_s_and_a_meter_s_completeness_of_the_day() -> None:
    registry = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E1",
                        "gates": [{"id": "G1"}],  # quiet 22:00-06:00
                        "lines": [{"id": "L1"}],
                        "meters": [
                            {
                                "id": "P1",
                                "role": "production",
                                "line": "L1",
                                "report_interval_s": 900,
                            }
                        ],
                    }
                ]
            }
        )
    )
    rule = DeviceOffline(lambda: registry, START.astimezone(UTC))
    day = START.replace(hour=0)
    for hour in (6, 7, 9):  # passages in 3 of the 4 hours 06:00-10:00
        rule.on_points([passage("G1", day + timedelta(hours=hour, minutes=20))], day)
    meter = [
        Point(
            "power",
            (("enterprise", "E1"), ("meter", "P1")),
            (("p_kw", 300.0), ("running", True)),
            to_ns(day + timedelta(minutes=15 * n)),
        )
        for n in range(40)  # 00:00 to 09:45, every 15 min
    ]
    rule.on_points(meter, day)
    now = day + timedelta(hours=10)
    assert rule.completeness("gate:E1/G1", now) == 0.75  # quiet hours not expected
    assert rule.completeness("meter:E1/P1", now) == 1.0
    assert rule.completeness("meter:E1/P1", now + timedelta(hours=1)) == 40 / 44
    assert rule.completeness("gate:E1/G1", day + timedelta(hours=5)) is None  # all quiet yet
    assert rule.completeness("gate:E1/G1", now + timedelta(days=1)) == 0.0  # a new day
