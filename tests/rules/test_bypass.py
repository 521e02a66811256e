"""bypass_flow: any flow through an outlet the registry marks as a bypass, for its persistence;
must-not cases on a clean plant with realistic meter noise."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.bypass import BypassFlow

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MAIN, BYPASS, OLD = ("MN00000000000000000000M1", "MN00000000000000000000B1", "MN0000000000000B2")


def outlet(ident: str, mn: str, **kw: object) -> dict[str, object]:
    return {"id": ident, "mn": mn, "password": "x", **kw}


REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "钢铁一厂",
                    "region": "city-a",
                    "outlets": [
                        outlet("DA001", MAIN, stopped_flow=500.0),
                        outlet("DA009", BYPASS, bypass=True, stopped_flow=50.0),
                        outlet("DA010", OLD, bypass=True, version="2005"),
                    ],
                }
            ]
        }
    )
)


def flow(
    minute: float,
    value: float,
    *,
    mn: str = BYPASS,
    flag: str = "N",
    interval: str = "rtd",
    code: str = "a00000",
) -> Point:
    tags = (("mn", mn), ("pollutant", code), ("interval", interval))
    field = "rtd" if interval == "rtd" else "avg"
    at = to_ns(T0 + timedelta(minutes=minute))
    return Point("emission", tags, ((field, value), ("flag", flag)), at)


def feed(rule: BypassFlow, points: list[Point]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for point in points:
        out += rule.on_points([point], T0)
    return out


def noise(rng: random.Random, minutes: range, low: float, high: float, **kw: object) -> list[Point]:
    return [flow(m, rng.uniform(low, high), **kw) for m in minutes]  # type: ignore[arg-type]


def test_flow_through_a_bypass_opens_an_alarm_from_its_first_flowing_value() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    rng = random.Random(7)
    quiet = noise(rng, range(0, 30), 0.0, 40.0)  # the meter's noise, under the 50 floor
    opened = feed(rule, quiet + noise(rng, range(30, 40), 8000.0, 9000.0))
    assert [a.state for a in opened] == ["open"]
    anomaly = opened[0]
    assert (anomaly.type, anomaly.severity, anomaly.subject) == (
        "bypass_flow",
        "alarm",
        "outlet:E1/DA009",
    )
    assert anomaly.started_at == T0 + timedelta(minutes=30)
    assert anomaly.evidence["stopped_flow"] == 50.0 and anomaly.evidence["flags"] == ["N"]
    assert anomaly.evidence["persist_s"] == 300.0 and anomaly.evidence["mn"] == BYPASS
    text = summary(anomaly, "zh", REGISTRY)
    assert text.startswith("钢铁一厂 旁路废气排放口DA009") and "旁路不应排放" in text, text
    closed = feed(rule, [flow(40, 12.0), flow(41, 9000.0)])
    assert [a.state for a in closed] == ["closed"]
    assert closed[0].ended_at == T0 + timedelta(minutes=40)
    assert closed[0].evidence["closed_as"] == "stopped"
    assert "已停止" in summary(closed[0], "zh", REGISTRY)


def test_a_flag_does_not_hide_a_bypass_flow_and_is_kept_in_the_evidence() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    out = feed(rule, [flow(m, 3000.0, flag="M") for m in range(0, 10)])
    out += feed(rule, [flow(10, 3100.0, flag="D"), flow(11, 4000.0, flag="D")])
    assert [a.state for a in out] == ["open", "open", "open"]
    assert out[0].evidence["flags"] == ["M"] and out[1].evidence["flags"] == ["M", "D"]
    assert out[2].evidence["peak_flow"] == 4000.0  # grew by 10 % or more
    assert "维护" in summary(out[1], "zh", REGISTRY)


def test_a_2005_device_s_flow_code_and_a_zero_floor_count() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    out = feed(rule, [flow(m, 0.5, mn=OLD, code="B02") for m in range(0, 6)])
    assert [a.subject for a in out] == ["outlet:E1/DA010"]


def test_must_not_a_clean_plant_with_meter_noise_raises_nothing() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    rng = random.Random(11)
    day = range(0, 24 * 60)
    points = noise(rng, day, 0.0, 49.9)  # the bypass meter idles under its floor all day
    points += noise(rng, day, 150_000.0, 190_000.0, mn=MAIN)  # the main stack runs
    points += [flow(m, 0.0, mn=OLD, code="B02", flag="F") for m in day]
    assert feed(rule, points) == []


def test_must_not_a_blip_shorter_than_the_persistence_or_other_factors_raise_nothing() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    blip = [flow(0, 0.0), flow(1, 900.0), flow(3, 900.0), flow(4.9, 900.0), flow(5, 0.0)]
    other = [flow(m, 900.0, code="a21026") for m in range(10, 30)]  # SO2, not a flow
    assert feed(rule, blip + other) == []


def test_the_finest_interval_is_judged_and_late_values_are_not() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    quiet = [flow(m, 0.0) for m in range(0, 180)]  # real-time values all along: idle
    hourly = [flow(60 * h, 5000.0, interval="hour") for h in range(0, 3)]
    assert feed(rule, quiet + hourly) == []  # the hourly means are not judged beside them
    assert feed(rule, [flow(m, 5000.0) for m in range(180, 190)]) != []
    late = feed(rule, [flow(175, 0.0)])  # before the latest judged value
    assert late == [] and "outlet:E1/DA009" in rule.open


def test_a_device_that_stops_its_real_time_values_is_judged_on_its_minute_values() -> None:
    rule = BypassFlow(lambda: REGISTRY)
    assert feed(rule, [flow(m, 0.0) for m in range(0, 5)]) == []
    # then only 10-minute records, the bypass carrying 8,000 m3/h
    out = feed(rule, [flow(10 * n, 8000.0, interval="minute") for n in range(1, 8)])
    assert [a.subject for a in out] == ["outlet:E1/DA009"]
    assert out[0].started_at == T0 + timedelta(minutes=20)  # the first after real-time went stale
