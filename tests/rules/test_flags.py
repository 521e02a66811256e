"""flag_abuse: hours flagged maintenance, calibration, fault... too often, or on the hours that
would exceed; must-not cases for a month of routine (a daily calibration hour, a weekly
maintenance morning, a stopped night flagged F)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.flags import FlagAbuse

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MN, MN_LAX = "MN00000000000000000000F1", "MN00000000000000000000F2"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "玻璃一厂",
                    "region": "city-a",
                    "outlets": [
                        {
                            "id": "DA001",
                            "mn": MN,
                            "password": "x",
                            "pollutants": {"a21002": {"limit": 100, "ref_o2": 9}},
                        },
                        {
                            "id": "DA002",
                            "mn": MN_LAX,
                            "password": "x",
                            "flag_share": 0.5,
                            "flag_over_limit_hours": 4,
                            "pollutants": {"a21002": {"limit": 100}},
                        },
                    ],
                }
            ]
        }
    )
)


def hour(h: int, value: float = 60.0, flag: str = "N", *, mn: str = MN) -> list[Point]:
    """An hourly record: NOx with the flag, and O2 flagged N."""
    tags = (("mn", mn), ("interval", "hour"))
    at = to_ns(T0 + timedelta(hours=h))
    return [
        Point(
            "emission",
            (*tags, ("pollutant", "a21002")),
            (("avg", value), ("zs_avg", value), ("flag", flag)),
            at,
        ),
        Point("emission", (*tags, ("pollutant", "a19001")), (("avg", 9.5), ("flag", "N")), at),
    ]


def feed(rule: FlagAbuse, records: list[list[Point]]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for points in records:
        out += rule.on_points(points, T0)
    return out


def test_a_third_of_the_hours_flagged_opens_at_the_first_flagged_hour() -> None:
    rule = FlagAbuse(lambda: REGISTRY)
    records = [hour(h, flag="D" if 10 <= h < 18 else "N") for h in range(0, 24)]
    out = feed(rule, records)
    opened = [a for a in out if a.state == "open"]
    assert opened and {a.id for a in opened} == {opened[0].id}
    anomaly = opened[-1]
    assert (anomaly.type, anomaly.severity, anomaly.subject) == (
        "flag_abuse",
        "warning",
        "outlet:E1/DA001:flags",
    )
    assert anomaly.started_at == T0 + timedelta(hours=10)
    ev = anomaly.evidence
    assert (ev["flagged_hours"], ev["flagged_over_limit"]) == (8, 0)
    assert ev["flagged_at"][0] == {
        "hour": (T0 + timedelta(hours=10)).isoformat(),
        "flags": ["D"],
        "over_limit": [],
    }
    text = summary(anomaly, "zh", REGISTRY)
    assert text.startswith("玻璃一厂 废气排放口DA001数据标记疑似滥用") and "被标记为故障" in text, (
        text
    )
    # a day of clean hours later, the 24 h window holds no flagged hour: closed
    closed = [a for a in feed(rule, [hour(h) for h in range(24, 40)]) if a.state == "closed"]
    assert len(closed) == 1 and closed[0].ended_at == T0 + timedelta(hours=18)


def test_exceedances_flagged_away_open_it_with_few_flagged_hours() -> None:
    rule = FlagAbuse(lambda: REGISTRY)
    records = [hour(h) for h in range(0, 20)]
    records[7] = hour(7, 180.0, "D")
    records[13] = hour(13, 150.0, "M")
    out = feed(rule, records)
    assert out and out[0].started_at == T0 + timedelta(hours=7)
    ev = out[-1].evidence
    assert (ev["flagged_hours"], ev["flagged_over_limit"]) == (2, 2)
    assert [h["over_limit"] for h in ev["flagged_at"]] == [["a21002"], ["a21002"]]
    assert "其中2小时的数值超过排放限值" in summary(out[-1], "zh", REGISTRY)


def test_must_not_a_month_of_routine_raises_nothing() -> None:
    rule = FlagAbuse(lambda: REGISTRY)
    rng = random.Random(4)
    records = []
    for h in range(24 * 30):
        local = (h + 8) % 24  # Beijing hour
        day = h // 24
        if local == 3:
            flag = "C"  # the daily automatic calibration
        elif day % 7 == 2 and 8 <= local < 12:
            flag = "M"  # the weekly maintenance morning
        elif day % 10 == 5 and local >= 20:
            flag = "F"  # a stopped evening
        else:
            flag = "N"
        value = rng.gauss(60, 15) if flag != "F" else 0.0
        records.append(hour(h, value, flag))
    records[100] = hour(100, 130.0, "D")  # one genuine analyser fault over the limit
    assert feed(rule, records) == []


def test_per_outlet_thresholds() -> None:
    def day(mn: str) -> list[list[Point]]:  # every third hour flagged D, three of them over
        return [
            hour(h, 150.0 if h in (0, 9, 18) else 60.0, "D" if h % 3 == 0 else "N", mn=mn)
            for h in range(24)
        ]

    rule = FlagAbuse(lambda: REGISTRY)
    assert feed(rule, day(MN_LAX)) == []  # 33 % under its 50 %, 3 exceedances under its 4
    opened = feed(rule, day(MN))
    assert opened and opened[0].evidence["flagged_over_limit"] == 2  # opens at the second


def test_old_hours_are_not_judged_and_replays_give_the_same_anomaly() -> None:
    records = [hour(h, flag="C" if h % 3 == 0 else "N") for h in range(0, 30)]
    first = feed(FlagAbuse(lambda: REGISTRY), records)
    rule = FlagAbuse(lambda: REGISTRY)
    again = feed(rule, records)
    assert first and [a.id for a in again] == [a.id for a in first]
    assert feed(rule, [hour(2, flag="D")]) == []  # older than the 24 h window


def test_a_restart_keeps_an_open_anomaly_until_half_a_window_is_judged_again() -> None:
    records = [hour(h, flag="D" if 10 <= h < 18 else "N") for h in range(0, 24)]
    anomaly = [a for a in feed(FlagAbuse(lambda: REGISTRY), records) if a.state == "open"][-1]
    rule = FlagAbuse(lambda: REGISTRY)
    rule.restore([anomaly])
    assert feed(rule, [hour(h) for h in range(24, 35)]) == []  # 11 hours: not judged yet
    closed = feed(rule, [hour(35)])  # 12 clean hours: routine
    assert [(a.id, a.state) for a in closed] == [(anomaly.id, "closed")]


def test_must_not_one_f_value_hide_an_hour_s_abused_flags() -> None:
    """Every third hour flagged M, each with one extra value flagged F beside it."""
    rule = FlagAbuse(lambda: REGISTRY)
    records = []
    for h in range(24):
        points = hour(h, flag="M" if h % 3 == 0 else "N")
        if h % 3 == 0:
            tags = (("mn", MN), ("interval", "hour"), ("pollutant", "a34013"))
            fields = (("avg", 0.0), ("flag", "F"))
            points.append(Point("emission", tags, fields, points[0].event_time_ns))
        records.append(points)
    opened = feed(rule, records)
    assert opened and opened[-1].evidence["flagged_hours"] == 8
    assert opened[-1].evidence["hours_with_record"] == 22  # as of hour 21, the last flagged
