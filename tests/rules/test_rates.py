"""low_transmission: a logger's daily and monthly transmission (传输率) and validity (有效率)
rates under the outlet's thresholds; must-not cases for complete days and rates at 90 %."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent, Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.rates import LowTransmission

CST = timezone(timedelta(hours=8))
DAY = datetime(2026, 11, 2, tzinfo=CST)  # Beijing midnight
MN, MN_STRICT = "MN00000000000000000000R1", "MN00000000000000000000R2"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "化工一厂",
                    "region": "city-a",
                    "outlets": [
                        {"id": "DA001", "mn": MN, "password": "x"},
                        {
                            "id": "DW001",
                            "mn": MN_STRICT,
                            "password": "x",
                            "kind": "water",
                            "min_transmission": 0.95,
                            "min_validity": 0.8,
                        },
                    ],
                }
            ]
        }
    )
)


def hour(at: datetime, flags: tuple[str, ...] = ("N", "N"), mn: str = MN) -> list[Point]:
    """One hourly record: a point per pollutant."""
    return [
        Point(
            "emission",
            (("mn", mn), ("pollutant", code), ("interval", "hour")),
            (("avg", 12.0), ("flag", flag)),
            to_ns(at),
        )
        for code, flag in zip(("a21026", "a21002"), flags, strict=False)
    ]


def send_day(
    rule: LowTransmission,
    day: datetime,
    *,
    skip: set[int] = frozenset(),  # type: ignore[assignment]
    flagged: set[int] = frozenset(),  # type: ignore[assignment]
    mn: str = MN,
) -> list[Anomaly]:
    """The day's hourly records, each as it would arrive: 5 minutes after its hour ended."""
    out: list[Anomaly] = []
    for h in range(24):
        at = day + timedelta(hours=h)
        arrives = at + timedelta(hours=1, minutes=5)
        if h not in skip:
            flags = ("N", "M") if h in flagged else ("N", "N")
            out += rule.on_points(hour(at, flags, mn), arrives)
        out += rule.on_tick(arrives)
    return out


def test_a_day_with_3_of_24_hours_missing_is_an_alarm_with_its_counts() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    out = send_day(rule, DAY - timedelta(days=1))  # a complete day first
    out += send_day(rule, DAY, skip={3, 4, 17})
    assert out == []  # the day is judged 2 h after it ended, on the device's clock
    out = send_day(rule, DAY + timedelta(days=1))
    assert len(out) == 1
    anomaly = out[0]
    assert (anomaly.type, anomaly.severity, anomaly.state, anomaly.subject) == (
        "low_transmission",
        "alarm",
        "closed",
        f"mn:{MN}/rates:day",
    )
    assert (anomaly.started_at, anomaly.ended_at) == (DAY, DAY + timedelta(days=1))
    ev = anomaly.evidence
    assert (ev["expected_hours"], ev["received_hours"], ev["valid_hours"]) == (24, 21, 21)
    assert ev["transmission_rate"] == 0.875 and ev["period_label"] == "2026-11-02"
    assert ev["missing_hours_at"] == [(DAY + timedelta(hours=h)).isoformat() for h in (3, 4, 17)]
    text = summary(anomaly, "zh", REGISTRY)
    assert (
        "2026-11-02（2026-11-02 00:00至2026-11-03 00:00）传输率87.5%（应报24小时，实报21小时）"
        in text
    ), text
    assert "低于要求（传输率90%、有效率90%）" in text


def test_flagged_hours_lower_the_validity_rate() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    send_day(rule, DAY, flagged={1, 2, 3})
    out = send_day(rule, DAY + timedelta(days=1))
    assert len(out) == 1
    ev = out[0].evidence
    assert (ev["received_hours"], ev["valid_hours"], ev["validity_rate"]) == (24, 21, 0.875)
    assert ev["invalid_hours_at"][0] == (DAY + timedelta(hours=1)).isoformat()


def nights_stopped(rule: LowTransmission, day: datetime, flagged: set[int]) -> list[Anomaly]:
    """A day whose source stops from 22:00 to 06:00 (every value flagged F)."""
    out: list[Anomaly] = []
    for h in range(24):
        at = day + timedelta(hours=h)
        stopped = h >= 22 or h < 6
        flags = ("F", "F") if stopped else (("N", "M") if h in flagged else ("N", "N"))
        out += rule.on_points(hour(at, flags), at + timedelta(hours=1, minutes=5))
        out += rule.on_tick(at + timedelta(hours=1, minutes=5))
    return out


def test_stopped_hours_count_as_sent_and_are_left_out_of_the_validity() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    out = nights_stopped(rule, DAY, set())  # 16 valid of 16 running hours
    out += nights_stopped(rule, DAY + timedelta(days=1), {9, 10})  # 14 of 16: 87.5 %
    out += send_day(rule, DAY + timedelta(days=2))
    assert [a.evidence["period_label"] for a in out] == ["2026-11-03"]
    ev = out[0].evidence
    assert (ev["received_hours"], ev["valid_hours"], ev["stopped_hours"]) == (24, 14, 8)
    assert (ev["transmission_rate"], ev["validity_rate"]) == (1.0, 0.875)
    assert "停运8小时不计" in summary(out[0], "zh", REGISTRY)


def test_must_not_complete_days_or_rates_at_the_threshold_raise_nothing() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    out = send_day(rule, DAY, skip={5, 6})  # 22 of 24: 91.7 %
    out += send_day(rule, DAY + timedelta(days=1), flagged={9, 10})  # validity 91.7 %
    for n in range(2, 6):
        out += send_day(rule, DAY + timedelta(days=n))
    assert out == []


def test_back_filled_hours_count_until_the_day_is_judged() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    send_day(rule, DAY, skip={10, 11, 12})
    filled_at = DAY + timedelta(days=1, hours=1)  # back-filled at 01:00 the next day
    for h in (10, 11, 12):
        rule.on_points(hour(DAY + timedelta(hours=h)), filled_at)
    assert send_day(rule, DAY + timedelta(days=1)) == []
    late = DAY + timedelta(days=2, hours=5)  # after the day was judged: changes nothing
    assert rule.on_points(hour(DAY + timedelta(hours=13)), late) == []


def test_the_first_day_counts_from_the_first_record_and_per_outlet_thresholds() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    out: list[Anomaly] = []
    for h in range(8, 24):  # the device starts sending at 08:00
        at = DAY + timedelta(hours=h)
        out += rule.on_points(hour(at, mn=MN_STRICT), at + timedelta(hours=1))
    out += send_day(rule, DAY + timedelta(days=1), mn=MN_STRICT, skip={0, 1}, flagged={5})
    # day 1: 16 of 16 hours; day 2: 22 of 24 = 91.7 % under this outlet's 95 %, validity 87.5 %
    # over its 80 %
    out += send_day(rule, DAY + timedelta(days=2), mn=MN_STRICT)
    assert [a.evidence["period_label"] for a in out] == ["2026-11-03"]
    assert out[0].evidence["min_transmission"] == 0.95


def test_a_silent_device_s_day_is_judged_on_the_wall_clock() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    send_day(rule, DAY, skip=set(range(12, 24)))  # falls silent at noon
    assert rule.on_tick(DAY + timedelta(days=1, hours=2)) == []  # its clock: 12:00 + 13 h 55
    out = rule.on_tick(DAY + timedelta(days=1, hours=2, minutes=5))
    assert [a.evidence["received_hours"] for a in out] == [12]


def test_a_month_is_judged_on_its_last_day() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    start = datetime(2026, 11, 1, tzinfo=CST)
    out: list[Anomaly] = []
    for n in range(30):
        day = start + timedelta(days=n)
        out += send_day(rule, day, skip=set(range(24)) if n == 14 else {2, 3})
    out += send_day(rule, datetime(2026, 12, 1, tzinfo=CST))
    by_period = {a.evidence["period"]: a for a in out}
    assert [a.evidence["period_label"] for a in out] == ["2026-11-15", "2026-11"]
    month = by_period["month"]
    assert month.subject == f"mn:{MN}/rates:month" and month.started_at == start
    assert (month.evidence["expected_hours"], month.evidence["received_hours"]) == (720, 638)
    assert month.ended_at == datetime(2026, 12, 1, tzinfo=CST)
    assert "2026-11月（2026-11-01 00:00至2026-12-01 00:00）传输率88.6%" in summary(
        month, "zh", REGISTRY
    )


def test_a_replayed_day_is_judged_on_the_device_s_clock_which_heartbeats_advance() -> None:
    rule = LowTransmission(lambda: REGISTRY)
    wall = DAY + timedelta(days=10)  # the day is replayed long after
    for h in range(20):
        rule.on_points(hour(DAY + timedelta(hours=h)), wall)
    assert rule.on_tick(wall + timedelta(minutes=1)) == []  # its clock: 20:01
    beat = DeviceEvent("contact", f"mn:{MN}", wall, "E1", "", DAY + timedelta(days=1, hours=3))
    rule.on_device_event(beat)
    assert [a.evidence["received_hours"] for a in rule.on_tick(wall)] == [20]
