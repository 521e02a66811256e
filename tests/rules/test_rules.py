"""Rules on synthetic, durable-looking points: what must open, what must not, and closing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.model import DeviceEvent, Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.engine import RuleEngine
from gateway.rules.offline import DeviceOffline
from gateway.rules.over_limit import OverLimit

MN = "MN0000000000000000000001"
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # 08:00 Beijing

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
                                "a21026": {"limit": 35, "ref_o2": 6.0},
                                "w01018": {"limit": 50},
                            },
                        }
                    ],
                    "meters": [{"id": "M1", "role": "production", "line": "L1"}],
                }
            ]
        }
    )
)


def hourly(code: str, hour: int, *, avg: float, flag: str = "N", zs: float | None = None) -> Point:
    fields: list[tuple[str, float | str | bool]] = [("avg", avg), ("flag", flag)]
    if zs is not None:
        fields.append(("zs_avg", zs))
    tags = (
        ("enterprise", "E1"),
        ("outlet", "DA001"),
        ("mn", MN),
        ("pollutant", code),
        ("interval", "hour"),
    )
    return Point("emission", tags, tuple(fields), to_ns(T0 + timedelta(hours=hour)))


# -- over_limit -----------------------------------------------------------------------------


def run_over_limit(*batches: list[Point]) -> list[Anomaly]:
    rule = OverLimit(lambda: REGISTRY)
    out: list[Anomaly] = []
    for batch in batches:
        out += rule.on_points(batch, T0)
    return out


def test_over_limit_opens_on_converted_value_and_merges_consecutive_hours() -> None:
    # 30 mg/m3 measured at O2 = 12 % is 30 x 15 / 9 = 50 at 6 % reference O2: over 35
    found = run_over_limit(
        [hourly("a19001", 0, avg=12.0), hourly("a21026", 0, avg=30.0)],
        [hourly("a19001", 1, avg=12.0), hourly("a21026", 1, avg=27.0)],
        [hourly("a19001", 2, avg=12.0), hourly("a21026", 2, avg=18.0)],  # 30: compliant
    )
    assert [a.state for a in found] == ["open", "open", "closed"]
    opened, merged, closed = found
    assert opened.id == merged.id == closed.id  # one anomaly for the consecutive hours
    assert opened.severity == "alarm" and opened.subject == "outlet:E1/DA001/a21026"
    assert opened.evidence["hours"][0]["value"] == pytest.approx(50.0)
    assert "converted to 6.0 % O2 with O2 = 12.0 %" in opened.evidence["hours"][0]["basis"]
    assert [h["hour"] for h in merged.evidence["hours"]] == [
        "2026-03-01T00:00:00+00:00",
        "2026-03-01T01:00:00+00:00",
    ]
    assert merged.evidence["max_value"] == pytest.approx(50.0)
    assert closed.ended_at == T0 + timedelta(hours=2)
    assert "2 h" in closed.summary and "limit of 35" in closed.summary


def test_over_limit_prefers_zsavg_and_ignores_invalid_flags_and_near_misses() -> None:
    assert run_over_limit([hourly("a21026", 0, avg=10.0, zs=35.0)]) == []  # at the limit: no
    assert run_over_limit([hourly("a21026", 0, avg=80.0, flag="D")]) == []  # fault: not valid
    assert run_over_limit([hourly("a21026", 0, avg=80.0, flag="M")]) == []  # maintenance
    found = run_over_limit([hourly("a21026", 0, avg=10.0, zs=36.0)])
    assert len(found) == 1 and found[0].evidence["hours"][0]["basis"] == "ZsAvg sent by the device"
    # water: no reference O2, the measured mean is compared
    assert run_over_limit([hourly("w01018", 0, avg=49.9)]) == []
    assert len(run_over_limit([hourly("w01018", 0, avg=50.1)])) == 1
    # an unregistered pollutant, or minute data, never opens
    assert run_over_limit([hourly("a21002", 0, avg=999.0)]) == []


def test_over_limit_gap_starts_a_new_anomaly_and_resend_is_ignored() -> None:
    first = hourly("w01018", 0, avg=60.0)
    found = run_over_limit([first], [first], [hourly("w01018", 5, avg=70.0)])
    assert [(a.started_at, a.state) for a in found] == [
        (T0, "open"),
        (T0, "closed"),
        (T0 + timedelta(hours=5), "open"),
    ]
    assert found[1].ended_at == T0 + timedelta(hours=1)


# -- device_offline -------------------------------------------------------------------------


def test_device_offline_opens_after_threshold_escalates_and_closes_on_contact() -> None:
    rule = DeviceOffline(lambda: REGISTRY, started_at=T0)
    assert rule.on_tick(T0 + timedelta(minutes=9)) == []  # near miss: 9 of 10 min
    opened = rule.on_tick(T0 + timedelta(minutes=10))
    subjects = {a.subject: a for a in opened}
    assert set(subjects) == {f"mn:{MN}"}  # the meter's threshold is 30 min
    assert subjects[f"mn:{MN}"].severity == "warning"
    assert rule.on_tick(T0 + timedelta(minutes=11)) == []  # one anomaly, not one per tick
    later = rule.on_tick(T0 + timedelta(minutes=61))
    escalated = [a for a in later if a.subject == f"mn:{MN}"]
    assert escalated and escalated[0].severity == "alarm"
    assert any(a.subject == "meter:E1/M1" for a in later)
    back = rule.on_device_event(DeviceEvent("contact", f"mn:{MN}", T0 + timedelta(minutes=70)))
    assert [(a.state, a.ended_at) for a in back] == [("closed", T0 + timedelta(minutes=70))]
    assert back[0].id == subjects[f"mn:{MN}"].id


def test_device_offline_contact_comes_from_events_for_loggers_and_data_for_meters() -> None:
    rule = DeviceOffline(lambda: REGISTRY, started_at=T0)
    rule.on_device_event(DeviceEvent("contact", f"mn:{MN}", T0 + timedelta(minutes=8)))
    power = Point(
        "power",
        (("enterprise", "E1"), ("meter", "M1")),
        (("p_kw", 1.0),),
        to_ns(T0 + timedelta(minutes=25)),
    )
    rule.on_points([power], T0 + timedelta(minutes=25))
    assert rule.on_tick(T0 + timedelta(minutes=17)) == []
    opened = rule.on_tick(T0 + timedelta(minutes=18))
    assert [a.subject for a in opened] == [f"mn:{MN}"]  # 10 min after its last contact
    assert all(a.subject != "meter:E1/M1" for a in rule.on_tick(T0 + timedelta(minutes=54)))
    assert any(a.subject == "meter:E1/M1" for a in rule.on_tick(T0 + timedelta(minutes=55)))


# -- unregistered_device / auth_failure --------------------------------------------------


# -- engine + store: replay gives no duplicates ------------------------------------------------


def test_replaying_the_same_data_adds_no_events(tmp_path: Path) -> None:
    data = [
        [hourly("a19001", h, avg=12.0), hourly("a21026", h, avg=30.0 if h < 3 else 10.0)]
        for h in range(5)
    ]

    def run(store: AnomalyStore, clock: datetime) -> None:
        engine = RuleEngine(store, [OverLimit(lambda: REGISTRY)], clock=lambda: clock)
        for batch in data:
            engine.on_points(batch)

    store = AnomalyStore(tmp_path / "a.sqlite")
    run(store, T0 + timedelta(days=1))
    events = store.events_after(0)
    assert [e.event for e in events] == ["opened", "updated", "updated", "closed"]
    run(store, T0 + timedelta(days=2))  # the same day again, detected later
    assert store.events_after(0) == events
    items, total = store.query(type_="over_limit")
    assert total == 1 and items[0].state == "closed"
    assert items[0].detected_at == T0 + timedelta(days=1)  # the first detection is kept
    store.close()


def test_engine_restores_open_anomalies_after_restart(tmp_path: Path) -> None:
    store = AnomalyStore(tmp_path / "a.sqlite")
    engine = RuleEngine(store, [OverLimit(lambda: REGISTRY)], clock=lambda: T0)
    engine.on_points([hourly("w01018", 0, avg=60.0)])
    store.close()
    store = AnomalyStore(tmp_path / "a.sqlite")
    engine = RuleEngine(store, [OverLimit(lambda: REGISTRY)], clock=lambda: T0)
    engine.on_points([hourly("w01018", 1, avg=10.0)])  # the next hour, after the restart
    (anomaly,), _ = store.query()
    assert anomaly.state == "closed" and anomaly.ended_at == T0 + timedelta(hours=1)
    store.close()


def test_a_failing_rule_does_not_stop_the_others(tmp_path: Path) -> None:
    class Broken(OverLimit):
        name = "broken"

        def on_points(self, points, detected_at):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

    store = AnomalyStore(tmp_path / "a.sqlite")
    engine = RuleEngine(
        store, [Broken(lambda: REGISTRY), OverLimit(lambda: REGISTRY)], clock=lambda: T0
    )
    engine.on_points([hourly("w01018", 0, avg=60.0)])
    assert store.query()[1] == 1
    store.close()


def test_over_limit_invalid_hour_does_not_keep_a_run_open_forever() -> None:
    found = run_over_limit(
        [hourly("w01018", 0, avg=60.0)],
        [hourly("w01018", 1, avg=0.0, flag="M")],  # maintenance: neither extends nor ends
        [hourly("w01018", 2, avg=10.0)],
    )
    assert [(a.state, a.ended_at) for a in found] == [
        ("open", None),
        ("closed", T0 + timedelta(hours=1)),
    ]


def test_over_limit_out_of_order_hours_all_close() -> None:
    found = run_over_limit(
        [hourly("w01018", 0, avg=60.0)],
        [hourly("w01018", 2, avg=60.0)],  # a gap: the first run ends, a new one starts
        [hourly("w01018", 1, avg=60.0)],  # late, before the open run: its own hour
        [hourly("w01018", 3, avg=10.0)],
    )
    final = {a.id: a for a in found}  # last version of each anomaly
    assert sorted((a.started_at, a.ended_at, a.state) for a in final.values()) == [
        (T0, T0 + timedelta(hours=1), "closed"),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2), "closed"),
        (T0 + timedelta(hours=2), T0 + timedelta(hours=3), "closed"),
    ]
    # an hour of the open run seen again changes nothing
    rule = OverLimit(lambda: REGISTRY)
    rule.on_points([hourly("w01018", 0, avg=60.0)], T0)
    rule.on_points([hourly("w01018", 1, avg=70.0)], T0)
    assert rule.on_points([hourly("w01018", 0, avg=60.0)], T0) == []
