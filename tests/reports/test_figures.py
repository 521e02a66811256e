"""The pure figures: periods in Beijing time, transmission rates, counts, timeliness,
compliance, feedback and the CSV sheet."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest

from gateway.anomalies.types import TYPES
from gateway.cases.model import Case, Finding
from gateway.regime import Alert, Order
from gateway.registry import Registry, RegistryFile
from gateway.reports import compliance, counts, feedback, period, problems, sheet, thresholds
from gateway.reports.timeliness import Handled, handled, timeliness
from gateway.reports.transmission import DeviceRef, transmission
from gateway.rules.obligation import alert_source
from gateway.rules.offline import GATE_OFFLINE_S, HJ212_OFFLINE_S
from tests.reports.helpers import CST, anomaly

DAY = period.day(date(2026, 3, 10))
MARCH = period.month(2026, 3)
AFTER = datetime(2026, 4, 2, 9, 0, tzinfo=CST)


def test_periods_are_beijing_days_and_months() -> None:
    assert DAY.start == datetime(2026, 3, 10, 0, 0, tzinfo=CST)
    assert DAY.end == datetime(2026, 3, 11, 0, 0, tzinfo=CST)
    assert DAY.hours == 24 and MARCH.hours == 31 * 24
    assert period.parse_month("2026-02").hours == 28 * 24
    assert period.parse_month("2026-12").end == datetime(2027, 1, 1, tzinfo=CST)
    assert DAY.hours_ended(datetime(2026, 3, 10, 5, 59, tzinfo=CST)) == 5
    assert DAY.hours_ended(AFTER) == 24 and DAY.hours_ended(DAY.start) == 0
    for bad in ("2026-3-10", "2026-13", "2026-02-30"):
        with pytest.raises(ValueError):
            (period.parse_day if len(bad) > 7 else period.parse_month)(bad)


def test_only_the_years_2000_to_2099_are_periods() -> None:
    for bad in ("0001-01", "1999-12", "2100-01", "9999-12", "0000-01"):
        with pytest.raises(ValueError):
            period.parse_month(bad)
    for bad in ("0001-01-01", "1999-12-31", "2100-01-01", "9999-12-31", "0000-01-01"):
        with pytest.raises(ValueError):
            period.parse_day(bad)
    assert period.parse_month("2000-01").start == datetime(2000, 1, 1, tzinfo=CST)
    assert period.parse_day("2099-12-31").end == datetime(2100, 1, 1, tzinfo=CST)
    assert period.parse_month("2099-12").hours == 31 * 24


# -- transmission ----------------------------------------------------------------------------

DEVICES = [DeviceRef("E1", "一厂", "DW1", "MN1"), DeviceRef("E2", "二厂", "DW2", "MN2")]


def hours_of(day: period.Period, *hours: int, minute: int = 0) -> list[datetime]:
    return [day.start + timedelta(hours=h, minutes=minute) for h in hours]


def test_a_device_with_every_hour_is_not_listed_and_one_missing_three_is() -> None:
    full = hours_of(DAY, *range(24)) + hours_of(DAY, *range(24))  # two pollutants each hour
    short = hours_of(DAY, *range(21))
    outside = [DAY.start - timedelta(hours=1), DAY.end]  # the hours before and after
    t = transmission(DEVICES, {"MN1": full + outside, "MN2": short}, DAY, AFTER)
    rates = {r.mn: (r.received, r.hours, r.rate) for r in t.devices}
    assert rates == {"MN1": (24, 24, 1.0), "MN2": (21, 24, 0.875)}
    assert [r.mn for r in t.below] == ["MN2"]
    assert [r.mn for r in t.devices] == ["MN2", "MN1"]  # lowest first


def test_a_silent_device_has_zero_and_a_running_day_counts_ended_hours() -> None:
    noon = DAY.start + timedelta(hours=12, minutes=30)
    t = transmission(DEVICES, {"MN1": hours_of(DAY, *range(12), minute=5)}, DAY, noon)
    rates = {r.mn: (r.received, r.hours) for r in t.devices}
    assert rates == {"MN1": (12, 12), "MN2": (0, 12)}  # 12:00-13:00 has not ended
    assert [r.mn for r in t.below] == ["MN2"]
    exactly = transmission(
        DEVICES[:1], {"MN1": hours_of(DAY, *range(9))}, DAY, DAY.start + timedelta(hours=10)
    )
    assert exactly.devices[0].rate == 0.9 and exactly.below == []  # 90 % is not below


# -- counts ----------------------------------------------------------------------------------


def test_counts_take_the_anomalies_that_started_in_the_period() -> None:
    before = anomaly("data_gap", "E1", DAY.start - timedelta(minutes=1))
    found = [
        anomaly("over_limit", "E1", DAY.start, ended_at=DAY.start + timedelta(hours=1)),
        anomaly("over_limit", "E1", DAY.start + timedelta(hours=5), subject="outlet:E1/DA1"),
        anomaly("data_gap", "E2", DAY.end - timedelta(seconds=1)),
        anomaly("data_gap", "E2", DAY.end - timedelta(seconds=2), subject="mn:x"),
        anomaly("data_gap", "E3", DAY.end - timedelta(seconds=3), subject="mn:y"),
    ]
    later = anomaly("over_limit", "E2", DAY.end)
    mine = counts.started_in([before, *found, later], DAY)
    assert mine == found
    c = counts.count(mine, {})
    assert (c.total, c.open, c.closed, c.alarm, c.warning) == (5, 4, 1, 2, 3)
    by_type = {t.type: (t.total, t.open, t.closed) for t in c.by_type}
    assert by_type["over_limit"] == (2, 1, 1) and by_type["data_gap"] == (3, 3, 0)
    assert [t.type for t in c.by_type] == [t.name for t in TYPES]
    assert {s.state: s.count for s in c.by_case_state}["none"] == 5
    top = counts.top_enterprises(mine, {"E1": "一厂"}, n=2)
    assert [(e.enterprise, e.name, e.alarm, e.total) for e in top] == [
        ("E1", "一厂", 2, 2),  # alarms first, though E2 has as many anomalies
        ("E2", "", 0, 2),
    ]


# -- timeliness ------------------------------------------------------------------------------


def case(opened: datetime, state: str = "new", deadline: datetime | None = None) -> Case:
    return Case(
        1,
        "E1",
        opened.date(),
        ("a",),
        opened,
        opened,
        state=state,  # type: ignore[arg-type]
        deadline=deadline,
    )


def test_timeliness_medians_and_a_reopened_case_is_not_closed() -> None:
    t0 = MARCH.start + timedelta(days=2)

    def h(n: float) -> datetime:
        return t0 + timedelta(hours=n)

    items = [
        handled(case(t0, "closed"), [(h(0), "open"), (h(2), "sign"), (h(10), "close")]),
        handled(
            case(t0, "checking"),
            [(h(0), "open"), (h(4), "sign"), (h(9), "close"), (h(11), "reopen")],
        ),
        handled(case(t0, "new", deadline=h(24)), [(h(0), "open")]),
    ]
    assert items[1].signed_at == h(4) and items[1].closed_at is None
    t = timeliness(items, AFTER)
    assert (t.opened, t.signed, t.closed, t.overdue) == (3, 2, 1, 1)
    assert t.median_sign_h == 3.0 and t.median_close_h == 10.0


# -- compliance ------------------------------------------------------------------------------

REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "regions": [
                {"id": "C", "name": "市", "level": "city"},
                {"id": "C1", "name": "一区", "parent": "C", "level": "county"},
                {"id": "C2", "name": "二区", "parent": "C", "level": "county"},
            ],
            "enterprises": [
                {
                    "id": "E1",
                    "name": "一厂",
                    "region": "C1",
                    "outlets": [
                        {
                            "id": "DW1",
                            "mn": "MN1",
                            "open": True,
                            "pollutants": {"w01018": {"limit": 50, "unit": "mg/L"}},
                        },
                    ],
                    "lines": [
                        {"id": "L1", "treatment_grace_s": 600, "treatment": [{"facility": "F1"}]}
                    ],
                    "facilities": [{"id": "F1"}],
                    "gates": [{"id": "G1"}],
                },
                {
                    "id": "E2",
                    "name": "二厂",
                    "region": "C2",
                    "outlets": [
                        {"id": "DW2", "mn": "MN2", "open": True, "offline_after_s": 300},
                        {"id": "BP2", "mn": "MN3", "open": True, "bypass": True},
                    ],
                },
            ],
        }
    )
)


def test_alerts_and_orders_are_clipped_to_the_period_and_judged() -> None:
    alert = Alert(
        id="a1",
        level="orange",
        regions=["C"],
        starts_at=MARCH.start - timedelta(days=1),
        ends_at=MARCH.start + timedelta(days=2),
    )
    order = Order(
        id="o1",
        kind="shutdown",
        enterprise="E2",
        starts_at=MARCH.start + timedelta(days=5),
        ends_at=MARCH.end + timedelta(days=5),
        withdrawn_at=MARCH.start + timedelta(days=6),
    )
    outside = Order(
        id="o2",
        kind="shutdown",
        enterprise="E1",
        starts_at=MARCH.end,
        ends_at=MARCH.end + timedelta(days=1),
    )
    ents = REGISTRY.data.enterprises
    items = compliance.obligations(
        [alert], [order, outside], ents, REGISTRY.regions.within, MARCH, AFTER
    )
    assert [(o.ref, o.enterprise, o.starts_at, o.ends_at) for o in items] == [
        ("a1", "E1", MARCH.start, MARCH.start + timedelta(days=2)),
        ("a1", "E2", MARCH.start, MARCH.start + timedelta(days=2)),
        ("o1", "E2", MARCH.start + timedelta(days=5), MARCH.start + timedelta(days=6)),
    ]
    violation = anomaly(
        "production_during_shutdown",
        "E1",
        MARCH.start + timedelta(hours=3),
        subject="line:E1/L1",
        ended_at=MARCH.start + timedelta(hours=5),
        evidence={"shutdown": {"sources": [alert_source(alert).evidence()]}},
    )
    not_shutdown = anomaly("over_limit", "E2", MARCH.start + timedelta(hours=3))
    elsewhere = anomaly(
        "production_during_shutdown",
        "E2",
        MARCH.start + timedelta(days=3),
        subject="line:E2/L1",
        ended_at=MARCH.start + timedelta(days=3, hours=1),
        evidence={"shutdown": {"sources": [alert_source(alert).evidence()]}},
    )
    # (that one falls after the alert and before the order)
    data = {items[0]: True, items[1]: True, items[2]: False}
    rows = compliance.judge(items, [violation, not_shutdown, elsewhere], data)
    assert [(r.ref, r.enterprise, r.status, r.anomalies) for r in rows] == [
        ("a1", "E1", "violated", [violation.id]),
        ("a1", "E2", "complied", []),
        ("o1", "E2", "unverifiable", []),
    ]
    unknown = compliance.judge(items, [violation], None)
    assert [r.status for r in unknown] == ["violated", "unknown", "unknown"]
    assert compliance.tally(rows).model_dump() == {
        "complied": 1,
        "violated": 1,
        "unverifiable": 1,
        "unknown": 0,
    }


# -- feedback --------------------------------------------------------------------------------


def judged(type_: str, verdict: str | None, region: str = "C1") -> feedback.Judged:
    c = case(MARCH.start)
    if verdict is not None:
        c = Case(
            c.id,
            c.enterprise,
            c.day,
            c.anomalies,
            c.opened_at,
            c.updated_at,
            state="verified",
            finding=Finding(verdict, "", "x", AFTER),  # type: ignore[arg-type]
        )
    return feedback.Judged(Handled(c, None, None), frozenset({type_}), region)


def test_a_rule_is_listed_high_at_30_percent_false_alarms_of_at_least_5_verdicts() -> None:
    items = (
        [judged("over_limit", "false_alarm")] * 2
        + [judged("over_limit", "confirmed", "C2")] * 3
        + [judged("data_gap", "false_alarm")] * 4  # 100 %, but only 4 verdicts
        + [judged("suspicious_data", "false_alarm")] * 2
        + [judged("suspicious_data", "device_fault")] * 8  # 20 % false alarms
        + [judged("suspicious_data", None)]
    )
    totals, regional = feedback.feedback(items, [t.name for t in TYPES], AFTER)
    row = {r.type: r for r in totals}
    assert (row["over_limit"].verdicts, row["over_limit"].false_alarm_share) == (5, 0.4)
    assert row["suspicious_data"].cases == 11 and row["suspicious_data"].verdicts == 10
    assert row["suspicious_data"].device_fault_share == 0.8
    assert [(r.type, r.region, r.verdicts) for r in regional if r.type == "over_limit"] == [
        ("over_limit", "C1", 2),
        ("over_limit", "C2", 3),
    ]
    assert [r.type for r in feedback.high_false_alarm(totals)] == ["over_limit"]


KNOWN_TYPES = {
    "device_offline",
    "data_gap",
    "over_limit",
    "treatment_not_running",
    "production_during_shutdown",
    "emission_during_shutdown",
    "suspicious_data",
    "curtailment_exceeded",
    "banned_vehicle_entry",
    "unregistered_device",
    "auth_failure",
    "bypass_flow",
}


def test_every_type_has_its_thresholds_from_the_registry_and_the_rules() -> None:
    ents = REGISTRY.data.enterprises
    for t in TYPES:
        if t.name in KNOWN_TYPES:  # (a type added later shows its `<type>:` registry fields)
            assert thresholds.thresholds(t.name, ents), t.name
    limit = thresholds.thresholds("over_limit", ents)
    assert [(x.key, x.value, x.default, x.sample) for x in limit] == [
        ("outlets.pollutants.w01018.limit", "50 mg/L", False, ["E1/DW1"])
    ]
    offline = {
        (x.key, x.value): (x.default, x.places)
        for x in thresholds.thresholds("device_offline", ents)
    }
    assert offline[("outlets.offline_after_s", f"{HJ212_OFFLINE_S:g} s")] == (True, 2)
    assert offline[("outlets.offline_after_s", "300 s")] == (False, 1)
    assert offline[("gates.offline_after_s", f"{GATE_OFFLINE_S:g} s")] == (True, 1)
    assert offline[("gates.quiet_hours", "22:00-06:00")] == (True, 1)
    gates = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "G",
                        "gates": [
                            {"id": "G1", "offline_after_s": 7200, "quiet_hours": []},
                            {"id": "G2", "quiet_hours": ["23:00-05:00", "12:00-13:00"]},
                        ],
                    }
                ]
            }
        )
    ).data.enterprises
    set_ = {
        (x.key, x.value): (x.default, x.sample)
        for x in thresholds.thresholds("device_offline", gates)
    }
    assert set_[("gates.offline_after_s", "7200 s")] == (False, ["G/G1"])
    assert set_[("gates.offline_after_s", f"{GATE_OFFLINE_S:g} s")] == (True, ["G/G2"])
    assert set_[("gates.quiet_hours", "[]")] == (False, ["G/G1"])
    assert set_[("gates.quiet_hours", "23:00-05:00, 12:00-13:00")] == (False, ["G/G2"])
    suspicious = {x.key for x in thresholds.thresholds("suspicious_data", ents)}
    assert {"outlets.constant_after_s", "outlets.zeros_after_s"} <= suspicious  # described too
    grace = thresholds.thresholds("treatment_not_running", ents)
    assert [(x.value, x.default) for x in grace] == [("600 s", False)]


def test_the_sheet_is_a_csv_excel_opens_with_chinese_headers_and_notes() -> None:
    from gateway.reports.model import (
        AnomalyCounts,
        ComplianceCounts,
        PeriodOut,
        Report,
        ScopeOut,
        Timeliness,
    )

    report = Report(
        period=PeriodOut(
            kind="day", label="2026-03-10", start=DAY.start, end=DAY.end, hours=24, hours_ended=24
        ),
        scope=ScopeOut(region=None, enterprise="E1", enterprises=1, whole=False),
        generated_at=AFTER,
        anomalies=counts.count([anomaly("over_limit", "E1", DAY.start)], {}),
        top_enterprises=[],
        timeliness=Timeliness(
            opened=0, signed=0, closed=0, median_sign_h=None, median_close_h=None, overdue=0
        ),
        transmission=transmission(DEVICES[:1], {}, DAY, AFTER),
        compliance=[],
        compliance_counts=ComplianceCounts(complied=0, violated=0, unverifiable=0, unknown=0),
        problems=[],
    )
    assert isinstance(report.anomalies, AnomalyCounts)
    raw = sheet.report_csv(report)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw[3:].decode("utf-8"))))
    assert rows[0] == ["日报"] and ["统计期", "2026-03-10"] in rows
    assert ["超标排放", "1", "1", "0", "1", "0"] in rows
    assert ["E1", "一厂", "DW1", "MN1", "0", "24", "0.0"] in rows
    assert any(r[:1] == ["排口"] or "排口" in r for r in rows)
    assert rows[-1] != ["说明"] and ["说明"] not in rows  # nothing to note

    noted = report.model_copy(
        update={
            "problems": [
                problems.note("influx_not_configured"),
                problems.note("influx_unreadable", "HTTP 500: boom"),
            ]
        }
    )
    zh = list(csv.reader(io.StringIO(sheet.report_csv(noted).decode("utf-8-sig"))))
    assert zh[-3:] == [
        ["说明"],
        [problems.TEXT["influx_not_configured"][0]],
        [problems.TEXT["influx_unreadable"][0] + "(原因:HTTP 500: boom)"],
    ]
    assert "未配置 InfluxDB" in zh[-2][0] and not any("configured" in r[0] for r in zh if r)
    en = list(csv.reader(io.StringIO(sheet.report_csv(noted, "en").decode("utf-8-sig"))))
    assert en[-3:] == [
        ["Notes"],
        ["InfluxDB is not configured: no transmission rates, compliance unknown"],
        [
            "InfluxDB could not be read: no transmission rates, compliance unknown unless "
            "violated (HTTP 500: boom)"
        ],
    ]
