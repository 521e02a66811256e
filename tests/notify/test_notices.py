"""Notices from anomaly events and cases: which, and their stable ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gateway.cases.model import Answer, Case
from gateway.notify.escalation import due
from gateway.notify.notices import Notice, anomaly_notices, overdue_id, unsigned_id
from gateway.registry import Registry
from tests.notify.conftest import T0, event, offline, over_limit


def test_an_opened_anomaly_is_told_once_by_a_stable_id(registry: Registry) -> None:
    first = anomaly_notices(event(over_limit()), None, T0, registry)
    again = anomaly_notices(event(over_limit(), seq=9), None, T0 + timedelta(hours=3), registry)
    assert [n.event for n in first] == ["anomaly_opened"]
    assert first[0].id == again[0].id  # a replayed event: the same notice
    other = anomaly_notices(event(over_limit(at=T0 + timedelta(hours=1))), None, T0, registry)
    assert other[0].id != first[0].id
    assert first[0].anomaly is not None and first[0].anomaly["summary"] == first[0].summary
    assert (first[0].enterprise_name, first[0].region) == ("苏州一厂", "320505")
    assert Notice.from_json(first[0].to_json()) == first[0]


def test_updates_and_closings_are_not_told_unless_they_escalate(registry: Registry) -> None:
    warning = offline()
    alarm = replace(warning, severity="alarm")
    assert anomaly_notices(event(warning, "updated"), "warning", T0, registry) == []
    assert anomaly_notices(event(warning.closed(T0), "closed"), "warning", T0, registry) == []
    (up,) = anomaly_notices(event(alarm, "updated"), "warning", T0, registry)
    assert up.event == "anomaly_escalated" and up.severity == "alarm"
    opened = anomaly_notices(event(warning), None, T0, registry)
    assert up.id != opened[0].id
    # opened as an alarm: its updates are no escalation
    assert anomaly_notices(event(alarm, "updated"), "alarm", T0, registry) == []
    assert anomaly_notices(event(over_limit(), "updated"), None, T0, registry) == []
    # not seen before: the type's opening severity (device_offline opens as a warning) stands in
    assert [n.event for n in anomaly_notices(event(alarm, "closed"), None, T0, registry)] == [
        "anomaly_escalated"
    ]


def test_what_a_case_is_due(registry: Registry) -> None:
    case = Case(3, "E1", T0.date(), ("a1",), T0, T0)
    four_hours = timedelta(hours=4)
    assert due(case, T0 + timedelta(hours=3), four_hours) == []
    assert due(case, T0 + timedelta(hours=5), four_hours) == ["case_unsigned"]
    signed = replace(case, state="checking", deadline=T0 + timedelta(days=1))
    assert due(signed, T0 + timedelta(hours=5), four_hours) == []
    assert due(signed, T0 + timedelta(days=1, seconds=1), four_hours) == ["case_overdue"]
    assert due(replace(signed, state="verified"), T0 + timedelta(days=2), four_hours) == []
    # longer ago than the outbox remembers: left alone
    assert due(signed, T0 + timedelta(days=40), four_hours) == []
    assert due(case, T0 + timedelta(days=40), four_hours) == []
    # 待签收 goes up a level only for a 报警 nobody has answered yet
    assert due(replace(case, level="warning"), T0 + timedelta(hours=5), four_hours) == []
    answer = Answer("检修中", (), "e1-user", T0 + timedelta(hours=1), on_behalf=False)
    assert due(replace(case, answer=answer), T0 + timedelta(hours=5), four_hours) == []
    warning = replace(signed, level="warning", answer=answer)
    assert due(warning, T0 + timedelta(days=1, seconds=1), four_hours) == ["case_overdue"]


def test_case_notice_ids(registry: Registry) -> None:
    case = Case(3, "E1", T0.date(), ("a1",), T0, T0, deadline=T0 + timedelta(days=1))
    later = replace(case, deadline=T0 + timedelta(days=2))
    assert overdue_id(case) == overdue_id(replace(case, state="answered"))
    assert overdue_id(case) != overdue_id(later)  # a new deadline is overdue again
    assert unsigned_id(case) == unsigned_id(later)
    # a case file started over reuses numbers, never notices
    assert unsigned_id(case) != unsigned_id(replace(case, opened_at=T0 + timedelta(days=9)))
