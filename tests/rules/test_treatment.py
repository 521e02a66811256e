"""treatment_not_running: opens, near misses, closing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.treatment import TreatmentNotRunning

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MN = "MN0000000000000000000002"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "meters": [
                        {"id": "P1", "role": "production", "line": "L1", "on_threshold_kw": 50},
                        {"id": "T1", "role": "treatment", "line": "F1", "on_threshold_kw": 5},
                        {"id": "T2", "role": "treatment", "line": "F2", "on_threshold_kw": 5},
                    ],
                    "facilities": [
                        {"id": "F1", "meters": ["T1"]},
                        {"id": "F2", "meters": ["T2"]},
                        {"id": "F3", "state": {"mn": MN, "facility": "SB1"}},
                    ],
                    "lines": [
                        {
                            "id": "L1",
                            "treatment": [
                                {"facility": "F1"},
                                {"facility": "F2", "duty": False},
                                {"facility": "F3"},
                            ],
                        }
                    ],
                }
            ]
        }
    )
)


def power(meter: str, minute: float, running: bool, p_kw: float) -> Point:
    tags = (("enterprise", "E1"), ("meter", meter), ("role", "x"), ("line", ""))
    at = T0 + timedelta(minutes=minute)
    return Point("power", tags, (("p_kw", p_kw), ("running", running)), to_ns(at))


def rs(minute: float, value: int) -> Point:
    tags = (("enterprise", "E1"), ("mn", MN), ("facility", "SB1"))
    return Point("facility_state", tags, (("rs", value),), to_ns(T0 + timedelta(minutes=minute)))


def run(rule: TreatmentNotRunning, minutes: list[tuple[float, list[Point]]]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for _, points in minutes:
        out += rule.on_points(points, T0)
    return out


def timeline(
    production: bool, treat: dict[str, bool], until: int, step: int = 5
) -> list[tuple[float, list[Point]]]:
    steps = []
    for minute in range(0, until + 1, step):
        points = [power("P1", minute, production, 120.0 if production else 10.0)]
        points += [power(m, minute, on, 30.0 if on else 0.5) for m, on in treat.items()]
        steps.append((minute, points))
    return steps


def test_opens_after_grace_from_condition_start_and_closes_when_treatment_resumes() -> None:
    rule = TreatmentNotRunning(lambda: REGISTRY)
    found = run(rule, timeline(True, {"T1": False, "T2": False}, until=20))
    assert len(found) == 1
    anomaly = found[0]
    assert (anomaly.type, anomaly.subject, anomaly.severity) == (
        "treatment_not_running",
        "line:E1/L1",
        "alarm",
    )
    assert anomaly.started_at == T0 and anomaly.as_of == T0 + timedelta(minutes=15)
    assert anomaly.evidence["production"][0]["p_kw"] == 120.0
    assert {f["facility"]: f["running"] for f in anomaly.evidence["treatment"]} == {
        "F1": False,
        "F2": False,
        "F3": False,
    }
    closed = rule.on_points([power("T1", 25, True, 30.0)], T0)
    assert [(a.state, a.ended_at, a.id) for a in closed] == [
        ("closed", T0 + timedelta(minutes=25), anomaly.id)
    ]


def test_near_misses_do_not_open() -> None:
    # the line below its on-threshold (not producing)
    assert (
        run(
            TreatmentNotRunning(lambda: REGISTRY),
            timeline(False, {"T1": False, "T2": False}, until=60),
        )
        == []
    )
    # a standby facility running in place of the duty one
    assert (
        run(
            TreatmentNotRunning(lambda: REGISTRY),
            timeline(True, {"T1": False, "T2": True}, until=60),
        )
        == []
    )
    # 14 minutes without treatment: within the grace time
    rule = TreatmentNotRunning(lambda: REGISTRY)
    found = run(rule, timeline(True, {"T1": False, "T2": False}, until=14, step=1))
    found += rule.on_points([power("T1", 14.5, True, 30.0)], T0)
    assert found == []


def test_facility_state_rs_counts_as_running() -> None:
    rule = TreatmentNotRunning(lambda: REGISTRY)
    rule.on_points([rs(0, 1)], T0)
    assert run(rule, timeline(True, {"T1": False, "T2": False}, until=30)) == []
    found = rule.on_points([rs(31, 0)], T0)  # SB1 reports off: the clock starts now
    found += run(rule, [(m, [power("P1", m, True, 120.0)]) for m in (40, 46)])
    assert [a.started_at for a in found] == [T0 + timedelta(minutes=31)]


def test_late_reading_does_not_rewrite_the_present() -> None:
    rule = TreatmentNotRunning(lambda: REGISTRY)
    run(rule, timeline(True, {"T1": True}, until=10))
    rule.on_points([power("T1", 2, False, 0.0)], T0)  # an old reading arrives late
    assert run(rule, timeline(True, {"T1": True}, until=40)) == []


def test_restart_does_not_close_on_a_treatment_reading_alone() -> None:
    rule = TreatmentNotRunning(lambda: REGISTRY)
    (opened,) = run(rule, timeline(True, {"T1": False, "T2": False}, until=20))
    restarted = TreatmentNotRunning(lambda: REGISTRY)
    restarted.restore([opened])
    assert restarted.on_points([power("T1", 30, False, 0.5)], T0) == []  # production unknown
    closed = restarted.on_points([power("P1", 31, False, 3.0)], T0)  # production stopped
    assert [(a.id, a.state) for a in closed] == [(opened.id, "closed")]


def test_a_treatment_meter_publishing_arrays_stops_at_its_reading_not_the_array_end() -> None:
    """T1 and T2 publish a JSON array of six 5-minute readings every 30 min; production runs
    throughout. The treatment stop at minute 10, inside an array, must start the anomaly then."""
    rule = TreatmentNotRunning(lambda: REGISTRY)
    out: list[Anomaly] = []
    for start in range(-60, 60, 30):
        batch: list[Point] = []
        for minute in range(start + 5, start + 35, 5):
            on = minute < 10  # treatment stops at minute 10
            batch += [power("T1", minute, on, 40.0 if on else 0.5), power("T2", minute, False, 0.0)]
            batch.append(power("P1", minute, True, 300.0))
        batch.append(rs(start + 30, 0))
        out += rule.on_points(batch, T0)
    opened = [a for a in out if a.state == "open"]
    # not at the end of its array (00:30)
    assert [a.started_at for a in opened] == [T0 + timedelta(minutes=10)]
    assert opened[0].as_of == T0 + timedelta(minutes=25)  # the grace ran out 15 min later


def test_an_array_that_stops_and_restarts_within_the_grace_opens_nothing() -> None:
    rule = TreatmentNotRunning(lambda: REGISTRY)
    batch: list[Point] = []
    for minute in range(0, 60, 5):
        on = not 10 <= minute < 20  # 10 minutes off: under the 15-minute grace
        batch += [power("T1", minute, on, 40.0 if on else 0.5), power("P1", minute, True, 300.0)]
    assert rule.on_points(batch, T0) == []
