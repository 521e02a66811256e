"""data_gap: detection, back-fill requests (one outstanding per device, retried), closing."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent
from gateway.rules.data_gap import DataGap
from tests.rules.test_rules import MN, REGISTRY, T0, hourly

Request = tuple[str, str, datetime, datetime]


def rule_with(requests: list[Request], accept: bool = True) -> DataGap:
    def request(mn: str, cn: str, begin: datetime, end: datetime) -> bool:
        requests.append((mn, cn, begin, end))
        return accept

    return DataGap(lambda: REGISTRY, request, retry_after_s=600, max_attempts=2)


def test_gap_opens_with_one_request_and_closes_when_all_hours_arrive() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    assert rule.on_points([hourly("w01018", 0, avg=1.0)], T0) == []
    (gap,) = rule.on_points([hourly("w01018", 3, avg=1.0)], T0)
    assert (gap.type, gap.subject, gap.started_at) == (
        "data_gap",
        f"mn:{MN}",
        T0 + timedelta(hours=1),
    )
    assert gap.evidence["missing_hours"] == 2 and gap.evidence["backfill_requested"] is True
    assert requests == [(MN, "2061", T0 + timedelta(hours=1), T0 + timedelta(hours=2))]
    # a second gap while the first request is outstanding: no second request
    rule.on_points([hourly("w01018", 5, avg=1.0)], T0)
    assert len(requests) == 1
    (partial,) = rule.on_points([hourly("w01018", 1, avg=1.0)], T0)
    assert partial.state == "open" and partial.evidence["filled"] == [
        (T0 + timedelta(hours=1)).isoformat()
    ]
    (closed,) = rule.on_points([hourly("w01018", 2, avg=1.0)], T0)
    assert closed.state == "closed" and closed.evidence["closed_as"] == "backfilled"
    assert closed.ended_at == T0 + timedelta(hours=3) and closed.id == gap.id


def test_consecutive_and_repeated_hours_are_no_gap() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    for hour in (0, 1, 1, 2, 0):
        assert rule.on_points([hourly("w01018", hour, avg=1.0)], T0) == []
    assert requests == []


def test_request_is_retried_then_given_up() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    rule.on_points([hourly("w01018", 0, avg=1.0)], T0)
    rule.on_points([hourly("w01018", 2, avg=1.0)], T0)
    rule.on_tick(T0 + timedelta(minutes=5))
    assert len(requests) == 1  # not yet: retry after 10 min
    rule.on_tick(T0 + timedelta(minutes=11))
    assert len(requests) == 2
    rule.on_tick(T0 + timedelta(minutes=30))
    assert len(requests) == 2 and rule.requests == {}  # max 2 attempts, then given up


# -- overdue hours on the device's clock (heartbeats do not hide missing records) -------------


def heartbeat(rule: DataGap, device_minute: float, wall: datetime | None = None) -> None:
    shown = T0 + timedelta(minutes=device_minute)
    rule.on_device_event(DeviceEvent("contact", f"mn:{MN}", wall or shown, "E1", "", shown))


def live(rule: DataGap, hour: int) -> list[Anomaly]:
    """An hourly record sent 5 minutes after its hour ended, as a live logger does."""
    return rule.on_points(
        [hourly("w01018", hour, avg=1.0)], T0 + timedelta(hours=hour + 1, minutes=5)
    )


def test_a_logger_that_only_sends_heartbeats_gets_a_gap_20_minutes_after_the_hour() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    for hour in range(3):
        assert live(rule, hour) == []
    for minute in range(195, 330, 15):  # heartbeats every 15 minutes, no 03:00 or 04:00 record
        heartbeat(rule, minute)
        if minute == 255:
            assert rule.on_tick(T0 + timedelta(minutes=259)) == []  # 03:00 is due at 04:20
    (opened,) = rule.on_tick(T0 + timedelta(minutes=260))
    assert (opened.started_at, opened.evidence["missing_hours"]) == (T0 + timedelta(hours=3), 1)
    assert opened.evidence["seen_by"] == "overdue" and opened.evidence["backfill_requested"]
    assert requests == [(MN, "2061", T0 + timedelta(hours=3), T0 + timedelta(hours=3))]
    assert rule.on_tick(T0 + timedelta(minutes=300)) == []  # nothing new
    (grown,) = rule.on_tick(T0 + timedelta(minutes=320))  # 04:00 overdue too
    assert grown.id == opened.id and grown.evidence["missing_hours"] == 2
    # the back-fill brings both hours: the gap closes as back-filled, no second anomaly
    out = rule.on_points([hourly("w01018", 3, avg=1.0)], T0 + timedelta(minutes=321))
    out += rule.on_points([hourly("w01018", 4, avg=1.0)], T0 + timedelta(minutes=322))
    assert [a.state for a in out] == ["open", "closed"] and {a.id for a in out} == {opened.id}
    assert out[-1].evidence["closed_as"] == "backfilled"
    assert rule.on_tick(T0 + timedelta(minutes=330)) == []


def test_a_logger_sending_its_hours_on_time_has_no_gap() -> None:
    rule = rule_with([])
    for hour in range(6):
        assert live(rule, hour) == []
        heartbeat(rule, hour * 60 + 75)
        assert rule.on_tick(T0 + timedelta(hours=hour + 1, minutes=59)) == []


def test_a_later_hour_after_an_overdue_gap_is_the_same_gap() -> None:
    rule = rule_with([])
    live(rule, 0)
    heartbeat(rule, 140)
    (opened,) = rule.on_tick(T0 + timedelta(minutes=140))  # 01:00 was due at 02:20
    out = live(rule, 2)  # 02:00 arrives, 01:00 still missing
    assert [(a.id, a.state, a.evidence["missing_hours"]) for a in out] == [(opened.id, "open", 1)]
    assert rule.on_tick(T0 + timedelta(minutes=200)) == []  # 02:00 came: nothing else is due


def test_a_silent_logger_gets_its_gap_on_the_wall_clock() -> None:
    rule = rule_with([])
    live(rule, 0)  # at 01:05, then nothing at all; its clock read at least 01:00 then
    assert rule.on_tick(T0 + timedelta(minutes=144)) == []
    (opened,) = rule.on_tick(T0 + timedelta(minutes=145))
    assert opened.started_at == T0 + timedelta(hours=1)


def test_a_replayed_day_is_judged_on_its_own_clock() -> None:
    """Yesterday replayed today: the wall clock is a day ahead of the device's."""
    rule = rule_with([])
    wall = T0 + timedelta(days=1)
    for hour in range(4):
        rule.on_points([hourly("w01018", hour, avg=1.0)], wall + timedelta(seconds=hour))
        heartbeat(rule, hour * 60 + 70, wall + timedelta(seconds=hour))
        assert rule.on_tick(wall + timedelta(seconds=hour, milliseconds=500)) == []
    heartbeat(rule, 6 * 60, wall + timedelta(seconds=10))  # the replay jumps to 06:00
    (opened,) = rule.on_tick(wall + timedelta(seconds=10))
    assert opened.started_at == T0 + timedelta(hours=4)
    assert opened.evidence["missing_hours"] == 1  # 05:00 is due only at 06:20


def test_a_device_clock_running_ahead_raises_nothing_early() -> None:
    rule = rule_with([])
    live(rule, 0)
    heartbeat(rule, 6 * 60, wall=T0 + timedelta(minutes=70))  # QN says 06:00 at 01:10
    assert rule.on_tick(T0 + timedelta(minutes=71)) == []
