"""suspicious_data: constant values, zeros and flag F while production runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import FieldValue, Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.suspicious import SuspiciousData

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MN = "MN0000000000000000000004"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                    "lines": [{"id": "L1"}],
                    "outlets": [{"id": "DA1", "mn": MN, "password": "x", "lines": ["L1"]}],
                }
            ]
        }
    )
)


def production(minute: float, running: bool) -> Point:
    tags = (("enterprise", "E1"), ("meter", "P1"))
    return Point(
        "power",
        tags,
        (("p_kw", 100.0 if running else 0.0), ("running", running)),
        to_ns(T0 + timedelta(minutes=minute)),
    )


def value(minute: float, rtd: float, flag: str = "N", code: str = "a21026") -> Point:
    tags = (
        ("enterprise", "E1"),
        ("outlet", "DA1"),
        ("mn", MN),
        ("pollutant", code),
        ("interval", "rtd"),
    )
    fields: tuple[tuple[str, FieldValue], ...] = (("rtd", rtd), ("flag", flag))
    return Point("emission", tags, fields, to_ns(T0 + timedelta(minutes=minute)))


def feed(rule: SuspiciousData, minutes: range, make: object, running: bool = True) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        out += rule.on_points([production(minute, running), make(minute)], T0)  # type: ignore[operator]
    return out


def test_constant_value_for_six_hours_while_producing() -> None:
    rule = SuspiciousData(lambda: REGISTRY)
    assert feed(rule, range(0, 359, 10), lambda m: value(m, 12.5)) == []  # 5 h 50 min
    found = feed(rule, range(360, 361), lambda m: value(m, 12.5))
    assert [(a.evidence["pattern"], a.started_at) for a in found] == [("constant", T0)]
    (closed,) = feed(rule, range(370, 371), lambda m: value(m, 12.6))
    assert closed.state == "closed" and closed.id == found[0].id


def test_near_misses_for_constant_values() -> None:
    varying = SuspiciousData(lambda: REGISTRY)
    assert feed(varying, range(0, 600, 10), lambda m: value(m, 12.5 + (m % 20) / 10)) == []
    stopped = SuspiciousData(lambda: REGISTRY)
    assert feed(stopped, range(0, 600, 10), lambda m: value(m, 12.5), running=False) == []
    oxygen = SuspiciousData(lambda: REGISTRY)
    assert feed(oxygen, range(0, 600, 10), lambda m: value(m, 20.9, code="a19001")) == []


def test_zeros_and_flag_f_for_fifteen_minutes_while_producing() -> None:
    zeros = SuspiciousData(lambda: REGISTRY)
    found = feed(zeros, range(0, 16, 1), lambda m: value(m, 0.0))
    assert {a.evidence["pattern"] for a in found} == {"zeros"}
    flag_f = SuspiciousData(lambda: REGISTRY)
    found = feed(flag_f, range(0, 16, 1), lambda m: value(m, 3.0 + m, flag="F"))
    assert {a.evidence["pattern"] for a in found} == {"flag_f"}
    short = SuspiciousData(lambda: REGISTRY)
    assert feed(short, range(0, 14, 1), lambda m: value(m, 3.0 + m, flag="F")) == []


def test_thresholds_are_per_outlet() -> None:
    quick = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E1",
                        "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                        "lines": [{"id": "L1"}],
                        "outlets": [
                            {
                                "id": "DA1",
                                "mn": MN,
                                "password": "x",
                                "lines": ["L1"],
                                "constant_after_s": 3600,
                            }
                        ],
                    }
                ]
            }
        )
    )
    rule = SuspiciousData(lambda: quick)
    found = feed(rule, range(0, 61, 10), lambda m: value(m, 12.5))
    assert [a.evidence["pattern"] for a in found] == ["constant"]


def test_records_wait_for_the_meters_to_reach_their_time() -> None:
    """The emission feed two hours ahead of the meter feed: flag F records sent after production
    stopped open nothing; zeros sent while production ran open once the meters catch up."""
    rule = SuspiciousData(lambda: REGISTRY)
    early: list[Anomaly] = []
    for minute in range(0, 30):  # zeros while running, then flag F after the stop at 60
        early += rule.on_points([value(minute, 0.0)], T0)
    for minute in range(60, 120):
        early += rule.on_points([value(minute, 0.0, flag="F")], T0)
    assert early == []
    late: list[Anomaly] = []
    for minute in range(0, 120, 5):
        late += rule.on_points([production(minute, running=minute < 60)], T0)
    assert [(a.evidence["pattern"], a.state, a.started_at) for a in late] == [
        ("zeros", "open", T0),
        ("zeros", "closed", T0),
    ]
    assert late[0].evidence["production"][0]["meter"] == "P1"
    assert rule.waiting == 4  # the records after the last reading (115 min) wait


def test_waiting_is_bounded_and_judged_by_the_latest_verdicts_past_the_bound() -> None:
    rule = SuspiciousData(lambda: REGISTRY, max_waiting=10)
    rule.on_points([production(0, running=True)], T0)
    found: list[Anomaly] = []
    for minute in range(1, 40):  # the meter goes silent; records keep coming
        found += rule.on_points([value(minute, 0.0)], T0)
    assert rule.waiting == 10
    assert [(a.evidence["pattern"], a.state) for a in found] == [("zeros", "open")]


def test_after_a_restart_records_older_than_every_verdict_are_not_judged() -> None:
    """A restored open anomaly is not closed by a record from before the first new reading."""
    before = SuspiciousData(lambda: REGISTRY)
    (opened,) = feed(before, range(0, 16, 1), lambda m: value(m, 0.0))
    after = SuspiciousData(lambda: REGISTRY)
    after.restore([opened])
    assert after.on_points([production(30, running=True)], T0) == []
    assert after.on_points([value(20, 0.0)], T0) == []  # older than every verdict: dropped
    assert after.waiting == 0 and opened.subject in after.open
    assert after.on_points([value(31, 0.0)], T0) == []  # at production's time: still zeros
    assert opened.subject in after.open


def test_outlets_whose_lines_have_no_production_meter_are_not_queued() -> None:
    bare = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E1",
                        "lines": [{"id": "L1"}],
                        "outlets": [{"id": "DA1", "mn": MN, "password": "x", "lines": ["L1"]}],
                    }
                ]
            }
        )
    )
    rule = SuspiciousData(lambda: bare)
    for minute in range(100):
        assert rule.on_points([value(minute, 0.0)], T0) == []
    assert rule.waiting == 0
