"""suspicious_data: constant values, zeros and flag F while the source runs, one anomaly per
outlet and pattern."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import FieldValue, Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.suspicious import SuspiciousData

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MN = "MN0000000000000000000004"  # E1 DA1: HJ 212-2017 CEMS on line L1
MN_DA2 = "MN0000000000000000000005"  # E1 DA2: another stack of line L1
MN_OLD = "MN0000000000000000000006"  # E1 DA3: an HJ/T 212-2005 logger on line L1
MN_W = "MN0000000000000000000007"  # E2 DW1: a wastewater plant, stopped at flow 0.5
MN_W3 = "MN0000000000000000000008"  # E3 DW1: a wastewater plant, no stopped level
SO2, NOX, DUST, O2, FLOW = "a21026", "a21002", "a34013", "a19001", "a00000"
COD, NH3N, WFLOW = "w01018", "w21003", "w00000"


def _outlet(id_: str, mn: str, **more: object) -> dict[str, object]:
    return {"id": id_, "mn": mn, "password": "x", **more}


REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "meters": [
                        {"id": "P1", "role": "production", "line": "L1"},
                        {"id": "P2", "role": "production", "line": "L2"},
                    ],
                    "lines": [{"id": "L1"}, {"id": "L2"}],
                    "outlets": [
                        _outlet("DA1", MN, lines=["L1"]),
                        _outlet("DA2", MN_DA2, version="2017", lines=["L1"]),
                        _outlet("DA3", MN_OLD, version="2005", lines=["L1"]),
                    ],
                },
                {
                    "id": "E2",
                    "outlets": [
                        _outlet("DW1", MN_W, version="2017", kind="water", stopped_flow=0.5)
                    ],
                },
                {"id": "E3", "outlets": [_outlet("DW1", MN_W3, version="2017", kind="water")]},
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


# -- a day of realistic feeds -------------------------------------------------------------

Schedule = Callable[[int], list[Point]]  # minute of the day -> what arrives then
Freeze = dict[str, tuple[int, int, float]]  # code -> [from, to) minutes of event time, value
GAS = {SO2: (30.0, 3.0), NOX: (80.0, 6.0), DUST: (6.0, 1.0), O2: (10.5, 0.4), FLOW: (45.0, 3.0)}
GAS_2005 = {"02": (30.0, 3.0), "03": (80.0, 6.0), "01": (6.0, 1.0), "S01": (10.5, 0.4)}


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def emission(mn: str, minute: int, interval: str, values: dict[str, float]) -> list[Point]:
    device = REGISTRY.device(mn)
    assert device is not None
    tags = (("enterprise", device.enterprise), ("outlet", device.outlet.id), ("mn", mn))
    field = "rtd" if interval == "rtd" else "avg"
    return [
        Point(
            "emission",
            (*tags, ("pollutant", code), ("interval", interval)),
            ((field, v), ("flag", "N")),
            to_ns(at(minute)),
        )
        for code, v in values.items()
    ]


def power(meter: str, minute: int, kw: float) -> Point:
    tags = (("enterprise", "E1"), ("meter", meter))
    return Point("power", tags, (("p_kw", kw), ("running", kw >= 50)), to_ns(at(minute)))


def meters(l1_runs: Callable[[int], bool] = lambda m: True) -> Schedule:
    """E1's meters every 5 minutes: P1 (line L1) as told, P2 (line L2, no outlet) running."""
    rng = random.Random("meters")

    def arrive(minute: int) -> list[Point]:
        if minute % 5:
            return []
        p1 = 320.0 * rng.uniform(0.9, 1.0) if l1_runs(minute) else rng.uniform(1.5, 3.0)
        return [power("P1", minute, p1), power("P2", minute, 210.0 * rng.uniform(0.9, 1.0))]

    return arrive


def _values(
    codes: dict[str, tuple[float, float]],
    freeze: Freeze,
    start: int,
    length: int,
    rng: random.Random,
) -> dict[str, float]:
    """A record's values: frozen where its whole interval is in a frozen window, else noise."""
    out = {}
    for code, (mid, spread) in codes.items():
        window = freeze.get(code)
        if window is not None and window[0] <= start and start + length <= window[1]:
            out[code] = window[2]
        else:
            out[code] = round(mid + rng.uniform(-spread, spread), 2)
    return out


def cems(
    mn: str, freeze: Freeze | None = None, codes: dict[str, tuple[float, float]] = GAS
) -> Schedule:
    """10-minute records, and each hour's record once the hour is over."""
    rng = random.Random(mn)
    frozen = freeze or {}

    def arrive(minute: int) -> list[Point]:
        points = []
        if minute % 10 == 0:
            points += emission(mn, minute, "minute", _values(codes, frozen, minute, 10, rng))
        if minute % 60 == 0 and minute >= 60:
            points += emission(
                mn, minute - 60, "hour", _values(codes, frozen, minute - 60, 60, rng)
            )
        return points

    return arrive


def water(
    mn: str,
    freeze: Freeze | None = None,
    flow: Callable[[int], float] | None = lambda m: 30.0 + m // 60 % 5,
) -> Schedule:
    """Hourly COD, ammonia and (unless `flow` is None) flow, sent once the hour is over."""
    rng = random.Random(mn)
    frozen = freeze or {}

    def arrive(minute: int) -> list[Point]:
        if minute % 60 or minute < 60:
            return []
        hour = minute - 60
        values = _values({COD: (20.0, 3.0), NH3N: (1.5, 0.4)}, frozen, hour, 60, rng)
        if flow is not None:
            values[WFLOW] = flow(hour)
        return emission(mn, hour, "hour", values)

    return arrive


def flow_meter(mn: str, flow: Callable[[int], float]) -> Schedule:
    """10-minute records of the flow alone."""
    return lambda minute: (
        [] if minute % 10 else emission(mn, minute, "minute", {WFLOW: flow(minute)})
    )


def play(rule: SuspiciousData, minutes: range, *schedules: Schedule) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        points = [p for schedule in schedules for p in schedule(minute)]
        if points:
            out += rule.on_points(points, at(minute))
    return out


def holding(anomaly: Anomaly) -> list[tuple[str, str]]:
    """The series of an anomaly that still hold their pattern."""
    return sorted(
        (s["pollutant"], s["interval"]) for s in anomaly.evidence["series"] if s["until"] is None
    )


def spans(anomaly: Anomaly) -> dict[tuple[str, str], tuple[object, ...]]:
    return {
        (s["pollutant"], s["interval"]): (s["value"], s["since"], s["until"])
        for s in anomaly.evidence["series"]
    }


# -- the rule ------------------------------------------------------------------------------


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


FROZEN: Freeze = {  # a logger that freezes: SO2 comes back at 10:00, the rest at 11:00
    SO2: (60, 600, 31.2),
    NOX: (60, 660, 78.6),
    DUST: (60, 660, 5.9),
    FLOW: (60, 660, 44.0),
    O2: (60, 660, 10.4),
}


def test_a_logger_freezing_several_channels_gives_one_anomaly_for_its_outlet() -> None:
    """Minute and hour series of four pollutants freeze at 01:00 (O2 too, which is not judged):
    one anomaly opens when the minute series have held 6 h, the hour series join an hour later,
    series that move again are marked, and the last one to move closes it. The other stack,
    the 2005 logger and the wastewater plants beside it stay quiet."""
    rule = SuspiciousData(lambda: REGISTRY)
    found = play(
        rule,
        range(0, 781, 5),
        meters(),
        cems(MN, FROZEN),
        cems(MN_DA2),
        cems(MN_OLD, codes=GAS_2005),
        water(MN_W),
        water(MN_W3),
    )
    assert {a.subject for a in found} == {"outlet:E1/DA1:constant"}
    assert len({a.id for a in found}) == 1 and {a.started_at for a in found} == {at(60)}
    assert [(a.state, len(holding(a))) for a in found] == [
        ("open", 4),  # 07:00: the four minute series have held 6 h
        ("open", 8),  # 08:00: the hour of 07:00 arrives, the hour series join
        ("open", 7),  # 10:00: SO2's minute series moves again
        ("open", 3),  # 11:00: SO2's hour of 10:00 and the other minute series move
        ("closed", 0),  # 12:00: the hour of 11:00 moves: the last series broke at 11:00
    ]
    first, last = found[0], found[-1]
    assert holding(first) == [(FLOW, "minute"), (NOX, "minute"), (SO2, "minute"), (DUST, "minute")]
    assert last.ended_at == at(660)
    assert last.evidence["pollutants"] == [FLOW, NOX, SO2, DUST]
    since = at(60).isoformat()
    assert spans(last) == {
        (SO2, "minute"): (31.2, since, at(600).isoformat()),
        (SO2, "hour"): (31.2, since, at(600).isoformat()),
        **{
            (code, interval): (v, since, at(660).isoformat())
            for code, v in ((NOX, 78.6), (DUST, 5.9), (FLOW, 44.0))
            for interval in ("minute", "hour")
        },
    }
    assert all(s["code_sent"] == s["pollutant"] for s in last.evidence["series"])
    evidence = first.evidence
    assert {k: evidence[k] for k in ("pattern", "outlet", "mn", "threshold_s", "lines")} == {
        "pattern": "constant",
        "outlet": "DA1",
        "mn": MN,
        "threshold_s": 6 * 3600.0,
        "lines": ["L1"],
    }
    assert evidence["running_by"] == "meters"
    assert [(p["meter"], p["running"]) for p in evidence["production"]] == [("P1", True)]
    assert first.summary.count(".") == 1
    assert all(code in first.summary for code in (FLOW, NOX, SO2, DUST))
    assert "2026-03-01 01:00" in first.summary and O2 not in first.summary


def test_two_outlets_freezing_give_two_anomalies() -> None:
    """Dust at 0 on two stacks of the same line: one anomaly each; 7 h of 0 is `zeros`
    only (not also `constant`)."""
    rule = SuspiciousData(lambda: REGISTRY)
    found = play(
        rule,
        range(0, 781, 5),
        meters(),
        cems(MN, {DUST: (60, 480, 0.0)}),
        cems(MN_DA2, {DUST: (90, 400, 0.0)}),
        water(MN_W),
    )
    final = {a.subject: a for a in found}
    assert sorted(final) == ["outlet:E1/DA1:zeros", "outlet:E1/DA2:zeros"]
    assert len({a.id for a in found}) == 2
    da1, da2 = final["outlet:E1/DA1:zeros"], final["outlet:E1/DA2:zeros"]
    assert (da1.state, da1.started_at, da1.ended_at) == ("closed", at(60), at(480))
    assert (da2.state, da2.started_at, da2.ended_at) == ("closed", at(90), at(400))
    assert da1.evidence["pollutants"] == da2.evidence["pollutants"] == [DUST]
    assert da1.evidence["threshold_s"] == 900.0


def test_a_frozen_channel_while_production_is_stopped_is_not_suspicious() -> None:
    """Line L1 stops at 05:00 (L2 keeps running, but serves no outlet here): the open `zeros`
    anomaly closes then, and the channels sitting still afterwards open nothing."""
    rule = SuspiciousData(lambda: REGISTRY)
    found = play(
        rule,
        range(0, 781, 5),
        meters(lambda m: m < 300),
        cems(MN, {DUST: (60, 781, 0.0), SO2: (330, 781, 31.2), NOX: (330, 781, 78.4)}),
        water(MN_W),
    )
    assert [(a.subject, a.state, a.ended_at) for a in found] == [
        ("outlet:E1/DA1:zeros", "open", None),  # 01:20, the minute series
        ("outlet:E1/DA1:zeros", "open", None),  # 03:00, the hour series joins
        ("outlet:E1/DA1:zeros", "closed", at(300)),
    ]
    assert holding(found[1]) == [(DUST, "hour"), (DUST, "minute")]
    stopped = SuspiciousData(lambda: REGISTRY)
    assert play(stopped, range(0, 781, 5), meters(lambda m: False), cems(MN, FROZEN)) == []


def test_oxygen_sitting_still_is_not_suspicious_in_either_vocabulary() -> None:
    rule = SuspiciousData(lambda: REGISTRY)
    frozen = {O2: (0, 781, 20.9), "S01": (0, 781, 20.9)}
    assert (
        play(
            rule,
            range(0, 781, 5),
            meters(),
            cems(MN, frozen),
            cems(MN_OLD, frozen, codes=GAS_2005),
        )
        == []
    )


def test_a_2005_logger_is_reported_in_2017_codes() -> None:
    rule = SuspiciousData(lambda: REGISTRY)
    found = play(
        rule,
        range(0, 181, 5),
        meters(),
        cems(MN_OLD, {"02": (30, 781, 0.0), "S01": (0, 781, 20.9)}, codes=GAS_2005),
    )
    assert [(a.subject, a.state) for a in found] == [("outlet:E1/DA3:zeros", "open")] * 2
    assert found[-1].evidence["pollutants"] == [SO2]
    assert [
        (s["pollutant"], s["code_sent"], s["interval"]) for s in found[-1].evidence["series"]
    ] == [
        (SO2, "02", "minute"),
        (SO2, "02", "hour"),
    ]


def test_constant_cod_at_a_wastewater_plant_is_judged_by_its_flow() -> None:
    """No production line: the plant runs while its flow is above its stopped level (0.5).
    COD holds 22.0 from 01:00; the flow falls to 0.3 in the hour of 09:00."""
    rule = SuspiciousData(lambda: REGISTRY)
    flow = lambda m: 30.0 + m // 60 % 5 if m < 540 else 0.3  # noqa: E731
    found = play(
        rule,
        range(0, 781, 5),
        meters(),
        cems(MN),
        water(MN_W, {COD: (60, 781, 22.0)}, flow),
        water(MN_W3),
    )
    assert [(a.subject, a.state, a.started_at, a.ended_at) for a in found] == [
        ("outlet:E2/DW1:constant", "open", at(60), None),  # the hour of 07:00, sent at 08:00
        ("outlet:E2/DW1:constant", "closed", at(60), at(540)),  # the source stopped
    ]
    evidence = found[0].evidence
    assert evidence["pollutants"] == [COD] and holding(found[0]) == [(COD, "hour")]
    assert (evidence["running_by"], evidence["flow"], evidence["stopped_flow"]) == (
        "flow",
        flow(420),
        0.5,
    )
    assert COD in found[0].summary and "2026-03-01 01:00" in found[0].summary
    assert rule.waiting == 0


def test_a_wastewater_plant_at_its_stopped_flow_is_a_stopped_source() -> None:
    """Constant COD while the flow is at or below the stopped level (configured, or 0)."""
    stopped = SuspiciousData(lambda: REGISTRY)
    at_level = lambda m: 0.3 if m // 60 % 2 else 0.5  # noqa: E731
    assert play(stopped, range(0, 781, 5), water(MN_W, {COD: (0, 781, 22.0)}, at_level)) == []
    dry = SuspiciousData(lambda: REGISTRY)
    assert play(dry, range(0, 781, 5), water(MN_W3, {COD: (0, 781, 22.0)}, lambda m: 0.0)) == []
    assert stopped.waiting == dry.waiting == 0
    flowing = SuspiciousData(lambda: REGISTRY)
    (found,) = play(flowing, range(0, 481, 5), water(MN_W3, {COD: (0, 781, 22.0)}, lambda m: 0.2))
    assert (found.evidence["flow"], found.evidence["stopped_flow"]) == (0.2, 0.0)


def test_flow_comes_from_the_same_record_or_else_the_latest_before_it() -> None:
    """Hourly COD without flow is judged by the latest 10-minute flow at or before its time;
    a flow in the record itself wins over the 10-minute ones."""
    rule = SuspiciousData(lambda: REGISTRY)
    found = play(
        rule,
        range(0, 781, 5),
        flow_meter(MN_W3, lambda m: 25.0 + m % 30 / 10 if m < 600 else 0.0),
        water(MN_W3, {COD: (60, 781, 22.0)}, flow=None),
    )
    assert [(a.state, a.ended_at) for a in found] == [("open", None), ("closed", at(600))]
    assert found[0].evidence["flow"] == 25.0  # the flow at 07:00, the hour's start
    own = SuspiciousData(lambda: REGISTRY)
    assert (
        play(
            own,
            range(0, 781, 5),
            flow_meter(MN_W3, lambda m: 25.0 + m % 30 / 10),
            water(MN_W3, {COD: (60, 781, 22.0)}, flow=lambda m: 0.0),
        )
        == []
    )


def test_a_restart_rebuilds_the_series_from_the_open_anomaly() -> None:
    """Restarted at 10:10 (SO2's minute series already moved): the rest goes as without it."""
    schedules = (meters(), cems(MN, FROZEN))
    before = SuspiciousData(lambda: REGISTRY)
    last = play(before, range(0, 611, 5), *schedules)[-1]
    assert (last.state, len(holding(last))) == ("open", 7)
    after = SuspiciousData(lambda: REGISTRY)
    after.restore([last])
    after.on_points([power("P1", m, 320.0) for m in range(0, 611, 5)], at(610))
    rest = play(after, range(615, 781, 5), *schedules)
    assert [(a.id, a.state, len(holding(a))) for a in rest] == [
        (last.id, "open", 3),
        (last.id, "closed", 0),
    ]
    assert rest[-1].ended_at == at(660)
    assert spans(rest[-1])[(SO2, "minute")][2] == at(600).isoformat()


def test_an_anomaly_of_one_series_from_before_is_closed_and_carried_on() -> None:
    """An open anomaly in the former one-series form (subject with pollutant and interval):
    the next record of its series closes it and the outlet's anomaly takes over its run."""
    legacy = Anomaly(
        type="suspicious_data",
        severity="warning",
        enterprise="E1",
        subject=f"outlet:E1/DA1/{DUST}/minute:zeros",
        started_at=at(0),
        summary="a34013 (minute) at outlet DA1 has reported 0 since 2026-03-01 00:00 UTC.",
        evidence={
            "pattern": "zeros",
            "outlet": "DA1",
            "mn": MN,
            "pollutant": DUST,
            "interval": "minute",
            "value": 0.0,
            "since": at(0).isoformat(),
        },
        rule="suspicious_data",
        detected_at=at(20),
        as_of=at(20),
    )
    rule = SuspiciousData(lambda: REGISTRY)
    rule.restore([legacy])
    found = play(rule, range(30, 41, 5), meters(), cems(MN, {DUST: (0, 781, 0.0)}))
    assert [(a.subject, a.state, a.started_at, a.ended_at) for a in found] == [
        (legacy.subject, "closed", at(0), at(30)),
        ("outlet:E1/DA1:zeros", "open", at(0), None),
    ]
    assert found[0].id == legacy.id
