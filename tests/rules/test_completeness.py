"""Daily completeness (transmission rate) and device_status points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.rules.data_gap import DataGap
from gateway.rules.offline import DeviceOffline
from gateway.status.completeness import DeviceStatusPoints, completeness, day_start
from tests.rules.test_rules import MN, REGISTRY, hourly

NOW = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)  # 12:30 Beijing: 12 hours of the day have ended


def test_completeness_counts_ended_hours_of_the_local_day() -> None:
    start = day_start(NOW)
    assert start.isoformat() == "2026-03-02T00:00:00+08:00"
    seen = {start + timedelta(hours=h) for h in range(12) if h != 5}
    assert completeness(seen, start, NOW) == 11 / 12
    assert completeness(seen, start, start + timedelta(minutes=30)) is None  # no hour ended
    full_day = {start + timedelta(hours=h) for h in range(24)}
    assert completeness(full_day, start, start + timedelta(days=2)) == 1.0


def test_device_status_points_carry_online_and_completeness() -> None:
    offline = DeviceOffline(lambda: REGISTRY, started_at=NOW - timedelta(hours=1))
    gaps = DataGap(lambda: REGISTRY, None)
    start = day_start(NOW)
    for h in range(12):
        if h != 5:
            gaps.on_points(
                [
                    hourly("w01018", 0, avg=1.0)._replace(
                        event_time_ns=int((start + timedelta(hours=h)).timestamp()) * 10**9
                    )
                ],
                NOW,
            )
    offline.last_contact[f"mn:{MN}"] = NOW
    points = DeviceStatusPoints(lambda: REGISTRY, offline, gaps).points(NOW)
    logger = next(p for p in points if p.tag("device") == MN)
    assert logger.field("online") is True
    assert logger.field("completeness") == 11 / 12
    assert all(p.measurement == "device_status" for p in points)
