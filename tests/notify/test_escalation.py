"""The escalation on real stores and a clock the test moves: overdue and unsigned cases are
queued once, a new deadline is told again, signed or verified cases are not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.anomalies.store import AnomalyStore
from gateway.cases.model import By
from gateway.cases.store import CaseStore
from gateway.notify.config import NotifySection
from gateway.notify.service import Notifier
from gateway.registry import Registry
from tests.notify.conftest import Clock, over_limit

OFFICER = By("li", "officer")


@pytest.fixture
def stores(tmp_path: Path, clock: Clock) -> Iterator[tuple[AnomalyStore, CaseStore]]:
    anomalies = AnomalyStore(tmp_path / "anomalies.sqlite")
    cases = CaseStore(tmp_path / "cases.sqlite", clock=clock)
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
