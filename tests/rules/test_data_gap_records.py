"""data_gap for minute and daily records, where the registry says a device sends them: gaps
seen by a later record and overdue on the device's clock, back-filled with 2051 / 2031; a
device not listing them is not judged on them, and its hourly track is unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.anomalies.messages import summary
from gateway.model import DeviceEvent, Point, to_ns
from gateway.registry import Registry, RegistryFile
from gateway.rules.data_gap import DataGap

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=CST)
MN, MN_HOURLY = "MN00000000000000000000G1", "MN00000000000000000000G2"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "电镀一厂",
                    "region": "city-a",
                    "outlets": [
                        {
                            "id": "DW001",
                            "mn": MN,
                            "password": "x",
                            "kind": "water",
                            "records": ["minute", "day"],
                            "minute_interval_s": 600,
                        },
                        {"id": "DW002", "mn": MN_HOURLY, "password": "x", "kind": "water"},
                    ],
                }
            ]
        }
    )
)
Request = tuple[str, str, datetime, datetime]


def record(at: datetime, interval: str, mn: str = MN) -> Point:
    tags = (("mn", mn), ("pollutant", "w01018"), ("interval", interval))
    return Point("emission", tags, (("avg", 20.0), ("flag", "N")), to_ns(at))


def minute(n: int, mn: str = MN) -> Point:
    return record(T0 + timedelta(minutes=10 * n), "minute", mn)


def rule_with(requests: list[Request]) -> DataGap:
    def request(mn: str, cn: str, begin: datetime, end: datetime) -> bool:
        requests.append((mn, cn, begin, end))
        return True

    return DataGap(lambda: REGISTRY, request)


def test_a_later_minute_record_opens_a_minute_gap_with_a_2051_request() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    assert rule.on_points([minute(0), minute(1)], T0) == []
    (gap,) = rule.on_points([minute(5)], T0)  # 08:20, 08:30, 08:40 missing
    assert (gap.subject, gap.started_at) == (f"mn:{MN}/minute", T0 + timedelta(minutes=20))
    ev = gap.evidence
    assert (ev["interval"], ev["missing_records"], ev["due_after_s"]) == ("minute", 3, 1200)
    assert "missing_hours" not in ev
    assert requests == [(MN, "2051", T0 + timedelta(minutes=20), T0 + timedelta(minutes=40))]
    text = summary(gap, "zh", REGISTRY)
    assert "2026-11-20 08:20至2026-11-20 08:40共3条分钟数据" in text, text
    for n in (2, 3):
        rule.on_points([minute(n)], T0)
    (closed,) = rule.on_points([minute(4)], T0)
    assert closed.state == "closed" and closed.evidence["closed_as"] == "backfilled"
    assert closed.ended_at == T0 + timedelta(minutes=50)


def test_an_overdue_daily_record_on_the_device_s_clock() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    day = datetime(2026, 11, 19, tzinfo=CST)
    rule.on_points([record(day, "day")], day + timedelta(days=1, minutes=5))
    # the next day's record is due 2 h after that day ends: 2026-11-21 02:00
    wall = day + timedelta(days=2, hours=1, minutes=59)
    assert [a for a in rule.on_tick(wall) if a.subject.endswith("/day")] == []
    rule.on_device_event(DeviceEvent("contact", f"mn:{MN}", wall, "E1", "", wall))
    (gap,) = [a for a in rule.on_tick(wall + timedelta(minutes=2)) if a.subject.endswith("/day")]
    assert gap.started_at == day + timedelta(days=1) and gap.evidence["missing_records"] == 1
    assert gap.evidence["seen_by"] == "overdue"
    assert (MN, "2031", day + timedelta(days=1), day + timedelta(days=1)) in requests
    assert "2026-11-20的日数据" in summary(gap, "zh", REGISTRY)


def test_must_not_records_the_registry_does_not_list_and_regular_ones_raise_nothing() -> None:
    requests: list[Request] = []
    rule = rule_with(requests)
    sparse = [minute(n, MN_HOURLY) for n in (0, 7, 30)]  # not listed: not judged
    regular = [minute(n) for n in range(0, 60)]
    days = [record(datetime(2026, 11, d, tzinfo=CST), "day") for d in range(1, 20)]
    out = rule.on_points(sparse + regular + days, T0 + timedelta(hours=10))
    assert out == [] and requests == []


def test_the_hourly_track_is_its_own() -> None:
    rule = rule_with([])
    hours = [record(T0 + timedelta(hours=h), "hour") for h in (0, 1, 3)]
    minutes = [minute(n) for n in range(0, 24)]
    out = rule.on_points(hours + minutes, T0)
    assert [(a.subject, a.evidence["missing_hours"]) for a in out] == [(f"mn:{MN}", 1)]


def test_a_restored_minute_gap_keeps_its_track() -> None:
    rule = rule_with([])
    rule.on_points([minute(0)], T0)
    (gap,) = rule.on_points([minute(3)], T0)
    again = rule_with([])
    again.restore([gap])
    for n in (1,):
        again.on_points([minute(n)], T0)
    (closed,) = again.on_points([minute(2)], T0)
    assert closed.id == gap.id and closed.state == "closed"
