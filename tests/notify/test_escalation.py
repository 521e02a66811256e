"""The escalation on real stores and a clock the test moves: overdue and unsigned cases are
queued once, a new deadline is told again, signed or verified cases are not; only unanswered
报警 cases are told unsigned; the case store reads only the cases within the window, in a worker
thread, while the event loop goes on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.anomalies.store import AnomalyStore
from gateway.cases.model import By, Case
from gateway.cases.store import CaseStore, policy
from gateway.notify.config import NotifySection
from gateway.notify.escalation import WINDOW
from gateway.notify.service import Notifier
from gateway.registry import Registry
from tests.notify.conftest import Clock, offline, over_limit

OFFICER = By("li", "officer")
E2_ACCOUNT = By("e2-user", "enterprise", ("E2",))


@pytest.fixture
def stores(tmp_path: Path, clock: Clock) -> Iterator[tuple[AnomalyStore, CaseStore]]:
    anomalies = AnomalyStore(tmp_path / "anomalies.sqlite")
    # device_offline warnings get cases too (预警, the enterprise's to answer)
    cases = CaseStore(tmp_path / "cases.sqlite", policy(["device_offline"]), clock=clock)
    anomalies.add_listener(cases.on_anomaly)
    yield anomalies, cases
    anomalies.close()
    cases.close()


def notifier(
    tmp_path: Path, registry: Registry, clock: Clock, stores: tuple[AnomalyStore, CaseStore]
) -> Notifier:
    section = NotifySection.model_validate(
        {
            "unsigned_after_h": 4,
            "channels": [
                {"name": "officers", "kind": "webhook", "url": "http://127.0.0.1:1/hook"},
                {"name": "chiefs", "kind": "webhook", "url": "http://127.0.0.1:1/h", "level": 2},
                {
                    "name": "nanjing",
                    "kind": "webhook",
                    "url": "http://127.0.0.1:1/n",
                    "enterprises": ["E3"],
                },
            ],
        }
    )
    anomalies, cases = stores
    n = Notifier(
        section,
        tmp_path / "notify.sqlite",
        lambda: registry,
        cases=cases,
        anomalies=anomalies,
        clock=clock,
    )
    anomalies.add_listener(n.on_anomaly)
    return n


def test_unsigned_then_overdue_each_once(
    tmp_path: Path, registry: Registry, clock: Clock, stores: tuple[AnomalyStore, CaseStore]
) -> None:
    anomalies, cases = stores
    n = notifier(tmp_path, registry, clock, stores)
    assert n.escalation is not None
    anomalies.record(over_limit("E1", at=clock.now))
    (case,) = cases.query(now=clock.now)[0]
    assert [r[0] for r in n.outbox.rows("officers")] != []  # anomaly_opened
    assert n.escalation.scan() == []
    clock.advance(hours=3, minutes=59)
    assert n.escalation.scan() == []
    clock.advance(minutes=2)
    (unsigned,) = n.escalation.scan()
    assert unsigned.event == "case_unsigned" and unsigned.case is not None
    assert unsigned.case["id"] == case.id and unsigned.case["state_label"] == "待签收"
    assert "已超过 4 小时仍未签收" in unsigned.summary
    assert [r[0] for r in n.outbox.rows("chiefs")] == [unsigned.id]
    assert n.escalation.scan() == []  # once
    assert n.outbox.rows("nanjing") == []  # another enterprise's channel: nothing

    cases.act(case.id, "sign", OFFICER, clock.now, {})
    deadline = clock.now + timedelta(hours=2)
    cases.act(case.id, "assign", OFFICER, clock.now, {"assignee": "王五", "deadline": deadline})
    clock.advance(hours=2, seconds=1)
    (overdue,) = n.escalation.scan()
    assert overdue.event == "case_overdue" and "核查人：王五" in overdue.summary
    assert n.escalation.scan() == []
    # a new deadline, passed again: told again, once
    new_deadline = clock.now + timedelta(hours=1)
    cases.act(case.id, "assign", OFFICER, clock.now, {"assignee": "王五", "deadline": new_deadline})
    assert n.escalation.scan() == []
    clock.advance(hours=2)
    (again,) = n.escalation.scan()
    assert again.id != overdue.id and again.case is not None
    assert again.case["deadline"] == new_deadline.isoformat()
    assert [r[0] for r in n.outbox.rows("officers")][-2:] == [overdue.id, again.id]
    # verified: never overdue again
    cases.act(case.id, "verify", OFFICER, clock.now, {"verdict": "confirmed", "note": "属实"})
    clock.advance(days=1)
    assert n.escalation.scan() == []
    n.close()


def test_a_restart_raises_nothing_twice(
    tmp_path: Path, registry: Registry, clock: Clock, stores: tuple[AnomalyStore, CaseStore]
) -> None:
    anomalies, _cases = stores
    first = notifier(tmp_path, registry, clock, stores)
    assert first.escalation is not None
    anomalies.record(over_limit("E1", at=clock.now))
    clock.advance(hours=5)
    assert len(first.escalation.scan()) == 1
    first.close()
    second = notifier(tmp_path, registry, clock, stores)
    assert second.escalation is not None
    assert second.escalation.scan() == []
    assert [r[1] for r in second.outbox.rows("chiefs")] == ["pending"]
    second.close()


def test_only_unanswered_alarm_cases_are_told_unsigned(
    tmp_path: Path, registry: Registry, clock: Clock, stores: tuple[AnomalyStore, CaseStore]
) -> None:
    anomalies, cases = stores
    n = notifier(tmp_path, registry, clock, stores)
    assert n.escalation is not None
    warning = offline("E1")
    anomalies.record(warning)  # a 预警 case
    anomalies.record(over_limit("E2", at=clock.now))  # a 报警 case, answered while 待签收
    anomalies.record(over_limit("E3", at=clock.now))  # a 报警 case nobody touches
    by_enterprise = {c.enterprise: c for c in cases.query(now=clock.now)[0]}
    assert by_enterprise["E1"].level == "warning" and by_enterprise["E2"].level == "alarm"
    cases.act(by_enterprise["E2"].id, "answer", E2_ACCOUNT, clock.now, {"text": "检修中"})
    clock.advance(hours=5)
    (unsigned,) = n.escalation.scan()
    assert unsigned.case is not None and unsigned.case["enterprise"] == "E3"
    assert [r[0] for r in n.outbox.rows("chiefs")] == [unsigned.id]
    # the 预警 becomes an alarm (the case is escalated to 报警) while still 待签收: now told
    anomalies.record(replace(warning, severity="alarm", evidence={"silence_s": 3600}))
    case = cases.get(by_enterprise["E1"].id)
    assert case is not None and (case.level, case.state) == ("alarm", "new")
    (escalated,) = n.escalation.scan()
    assert escalated.event == "case_unsigned" and escalated.case is not None
    assert escalated.case["id"] == case.id
    assert n.escalation.scan() == []
    # the answered one stays untold, and its deadline, once set and passed, is told as before
    answered = by_enterprise["E2"].id
    cases.act(answered, "sign", OFFICER, clock.now, {})
    deadline = clock.now + timedelta(hours=1)
    cases.act(answered, "assign", OFFICER, clock.now, {"assignee": "王五", "deadline": deadline})
    clock.advance(hours=2)
    (overdue,) = n.escalation.scan()
    assert overdue.event == "case_overdue" and overdue.case is not None
    assert overdue.case["id"] == answered
    assert len(n.outbox.rows("chiefs")) == 2
    n.close()


def test_the_case_store_reads_only_the_cases_within_the_window(
    clock: Clock, stores: tuple[AnomalyStore, CaseStore]
) -> None:
    anomalies, cases = stores
    now = clock.now + timedelta(days=60)

    def opened(name: str, at: timedelta, deadline: timedelta | None = None) -> int:
        """A case of its own enterprise `name`, opened `at` before `now`, assigned with a
        deadline `deadline` from `now`."""
        clock.now = now - at
        anomaly = offline(name) if name == "warning" else over_limit(name, at=clock.now)
        event = anomalies.record(anomaly)
        assert event is not None
        case = cases.case_of(event.anomaly.id)
        assert case is not None
        if deadline is not None:
            cases.act(case.id, "sign", OFFICER, clock.now, {})
            details = {"assignee": "王五", "deadline": now + deadline}
            cases.act(case.id, "assign", OFFICER, clock.now, details)
        return case.id

    old = opened("old", WINDOW + timedelta(days=1))  # 待签收, opened before the window
    recent = opened("recent", timedelta(hours=5))
    opened("just-opened", timedelta(hours=1))
    opened("warning", timedelta(hours=5))  # 预警
    answered = opened("answered", timedelta(hours=5))
    cases.act(answered, "answer", OFFICER, now - timedelta(hours=5), {"text": "检修中"})
    opened("long-overdue", WINDOW + timedelta(days=3), -(WINDOW + timedelta(days=1)))
    overdue = opened("overdue", timedelta(days=3), -timedelta(days=2))
    opened("not-yet-due", timedelta(days=3), timedelta(days=1))
    verified = opened("verified", timedelta(days=3), -timedelta(days=2))
    cases.act(verified, "verify", OFFICER, now, {"verdict": "confirmed", "note": "属实"})
    assert len(cases) == 9 and cases.get(old) is not None

    got = cases.overdue_or_unsigned(
        now=now, since=now - WINDOW, unsigned_before=now - timedelta(hours=4)
    )
    assert [c.id for c in got] == sorted([recent, overdue])
    # the wait before 待签收 counts is the caller's to choose
    later = cases.overdue_or_unsigned(
        now=now, since=now - WINDOW, unsigned_before=now - timedelta(days=1)
    )
    assert [c.id for c in later] == [overdue]


async def test_the_case_file_is_read_in_a_worker_thread(
    tmp_path: Path, registry: Registry, clock: Clock, stores: tuple[AnomalyStore, CaseStore]
) -> None:
    anomalies, cases = stores
    n = notifier(tmp_path, registry, clock, stores)
    anomalies.record(over_limit("E1", at=clock.now))
    anomalies.record(over_limit("E2", at=clock.now))
    first, second = sorted(c.id for c in cases.query(now=clock.now)[0])
    clock.advance(hours=5)
    # an officer's change of the second case holds the case store (its audit runs inside the
    # change, under the store's lock) until the test lets it go
    entered, release = threading.Event(), threading.Event()
    held_out: list[bool] = []

    def audit(before: Case, after: Case) -> None:
        entered.set()
        held_out.append(not release.wait(10))

    officer = threading.Thread(
        target=cases.act, args=(second, "sign", OFFICER, clock.now, {}, audit)
    )
    officer.start()
    assert entered.wait(10)
    scan = asyncio.create_task(n.escalate())
    for _ in range(3):
        await asyncio.sleep(0)  # the loop goes on while the scan waits for the case file
    assert not scan.done()
    release.set()
    raised = await scan
    officer.join()
    assert held_out == [False]  # let go by the test, not by the timeout
    assert [r.case["id"] for r in raised if r.case is not None] == [first]  # the second: signed
    n.close()
