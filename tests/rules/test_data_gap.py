"""data_gap: detection, back-fill requests (one outstanding per device, retried), closing."""

from __future__ import annotations

from datetime import datetime, timedelta

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
