"""The case store behaves the same on SQLite and on PostgreSQL.

Each contract test runs against both backends, the anomaly store on the same backend as in
a deployment (a real PostgreSQL: a missing server is an error, never a skip); the tests
after them are PostgreSQL's own: two nodes' stores on one database acting on one case,
hearing one anomaly event, and the schema's version.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.audit import AuditLog
from gateway.cases.model import By, Case, Conflict, Forbidden
from gateway.cases.store import CaseStore, policy
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.cluster.pg_audit import PgAudit
from gateway.cluster.pg_cases import INDEX_LOCK, PgCases
from gateway.migrations import StateError

CST = timezone(timedelta(hours=8))
T0 = datetime(2025, 1, 10, 8, 0, tzinfo=CST)
OFFICER = By("zhang", "officer")
CHIEF = By("chief", "admin")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Node:
    """One process's stores: anomalies, and cases opened by its listener."""

    anomalies: AnomalyStore
    cases: CaseStore


@dataclass
class Backend:
    kind: str
    open: Callable[..., Node]  # (join_same_day=True) -> a node; again: a restart
    raw: Callable[[], Any]  # a plain connection to the case tables, for SQL of our own
    clock: Clock


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[Node] = []
    clock = Clock()
    if request.param == "sqlite":

        def stores() -> tuple[AnomalyStore, Any]:
            return AnomalyStore(tmp_path / "anomalies.sqlite"), tmp_path / "cases.sqlite"

        def raw() -> Any:
            return sqlite3.connect(str(tmp_path / "cases.sqlite"), isolation_level=None)
    else:
        dsn = request.getfixturevalue("pg_dsn")

        def stores() -> tuple[AnomalyStore, Any]:
            return AnomalyStore(PgAnomalies(dsn)), PgCases(dsn)

        def raw() -> Any:
            return psycopg.connect(dsn, autocommit=True)

    def make(join_same_day: bool = True) -> Node:
        anomalies, where = stores()
        cases = CaseStore(
            where, policy({"suspicious_data"}), join_same_day=join_same_day, clock=clock
        )
        anomalies.add_listener(cases.on_anomaly)
        opened.append(Node(anomalies, cases))
        return opened[-1]

    yield Backend(request.param, make, raw, clock)
    for node in opened:
        node.cases.close()
        node.anomalies.close()


def make_anomaly(
    *,
    type_: str = "over_limit",
    enterprise: str = "E1",
    subject: str = "outlet:DA001",
    started_at: datetime = T0,
    severity: str = "alarm",
) -> Anomaly:
    return Anomaly(
        type=type_,
        severity=severity,  # type: ignore[arg-type]
        enterprise=enterprise,
        subject=subject,
        started_at=started_at,
        summary=f"{type_} at {subject}",
        evidence={"value": 12.5, "limit": 10.0},
        rule=type_,
        detected_at=started_at + timedelta(minutes=1),
    )


def alarm(node: Node, enterprise: str = "E1", n: int = 0, **kw: Any) -> Anomaly:
    anomaly = make_anomaly(enterprise=enterprise, subject=f"outlet:{enterprise}/DA00{n}", **kw)
    node.anomalies.record(anomaly)
    return anomaly


def case_of(node: Node, anomaly: Anomaly) -> Case:
    case = node.cases.case_of(anomaly.id)
    assert case is not None
    return case


def deadline(days: float = 3) -> datetime:
    return T0 + timedelta(days=days)


LOOP: list[tuple[str, By, dict[str, Any]]] = [
    ("sign", OFFICER, {"note": "收到"}),
    ("assign", OFFICER, {"assignee": "一中队", "deadline": deadline()}),
    ("answer", By("plant", "enterprise", ("E1",)), {"text": "设备检修", "attachments": []}),
    ("verify", OFFICER, {"verdict": "device_fault", "note": "分析仪故障"}),
    ("close", OFFICER, {"note": "整改完成"}),
]


# -- the contract ------------------------------------------------------------------------------


def test_the_whole_loop_writes_a_history_row_and_an_audit_call_per_change(
    backend: Backend,
) -> None:
    node = backend.open()
    anomaly = alarm(node)
    case = case_of(node, anomaly)
    assert (case.id, case.state, case.level, case.anomalies) == (1, "new", "alarm", (anomaly.id,))
    audited: list[tuple[str, str]] = []
    for n, (action, by, details) in enumerate(LOOP, start=1):
        at = T0 + timedelta(hours=n)
        after = node.cases.act(
            case.id, action, by, at, details, lambda b, a: audited.append((b.state, a.state))
        )
        assert after is not None and after.updated_at == at
    assert audited == [
        ("new", "signed"),
        ("signed", "checking"),
        ("checking", "answered"),
        ("answered", "verified"),
        ("verified", "closed"),
    ]
    node.cases.close()
    node.anomalies.close()
    again = backend.open()  # a restart keeps cases and history
    kept = again.cases.get(case.id)
    assert kept is not None and kept.state == "closed" and kept.signed_by == "zhang"
    assert kept.assignee == "一中队" and kept.deadline == deadline()
    assert kept.answer is not None and kept.answer.by == "plant" and not kept.answer.on_behalf
    assert kept.finding is not None and kept.finding.verdict == "device_fault"
    history = again.cases.history(case.id)
    assert [(s.action, s.actor, s.actor_role, s.from_state, s.to_state) for s in history] == [
        ("open", "gateway", "system", None, "new"),
        ("sign", "zhang", "officer", "new", "signed"),
        ("assign", "zhang", "officer", "signed", "checking"),
        ("answer", "plant", "enterprise", "checking", "answered"),
        ("verify", "zhang", "officer", "answered", "verified"),
        ("close", "zhang", "officer", "verified", "closed"),
    ]
    assert [s.at for s in history] == [T0 + timedelta(hours=n) for n in range(6)]
    assert all(s.at.tzinfo == UTC for s in history)
    assert history[0].details == {
        "anomaly_id": anomaly.id,
        "type": "over_limit",
        "severity": "alarm",
    }
    assert history[2].details == {"assignee": "一中队", "deadline": deadline().isoformat()}
    assert [s.seq for s in history] == sorted(s.seq for s in history)
    assert again.cases.case_of(anomaly.id) == kept and len(again.cases) == 1
    assert again.cases.get(99) is None and again.cases.case_of("no-such-anomaly") is None
    assert again.cases.history(99) == []
    reopened = again.cases.act(case.id, "reopen", CHIEF, T0 + timedelta(days=1), {"reason": "复查"})
    assert reopened is not None and (reopened.state, reopened.reopened) == ("checking", 1)


def test_refused_actions_change_nothing(backend: Backend) -> None:
    node = backend.open()
    case = case_of(node, alarm(node))
    with pytest.raises(Forbidden):
        node.cases.act(case.id, "sign", By("li", "viewer"), T0, {})
    with pytest.raises(Conflict, match="new"):
        node.cases.act(case.id, "close", OFFICER, T0, {})
    with pytest.raises(ValueError, match="unknown"):
        node.cases.act(case.id, "sign", OFFICER, T0, {"bogus": 1})
    assert node.cases.act(99, "sign", OFFICER, T0, {}) is None
    assert node.cases.get(case.id) == case and len(node.cases.history(case.id)) == 1


def test_a_change_the_audit_cannot_record_is_not_made(backend: Backend) -> None:
    node = backend.open()
    case = case_of(node, alarm(node))

    def broken(before: Case, after: Case) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        node.cases.act(case.id, "sign", CHIEF, T0, {}, broken)
    again = node.cases.get(case.id)
    assert again is not None and again.state == "new" and len(node.cases.history(case.id)) == 1
    assert node.cases.act(case.id, "sign", CHIEF, T0, {}) is not None  # nothing left held


def test_a_replayed_anomaly_event_opens_no_second_case(backend: Backend) -> None:
    node = backend.open()
    anomaly = make_anomaly()
    event = node.anomalies.record(anomaly)
    assert event is not None and len(node.cases) == 1
    node.cases.on_anomaly(event)  # the same event delivered again
    closed = node.anomalies.record(anomaly.closed(T0 + timedelta(hours=1)))
    assert closed is not None
    node.cases.on_anomaly(closed)
    case = case_of(node, anomaly)
    assert len(node.cases) == 1 and case.anomalies == (anomaly.id,)
    assert [s.action for s in node.cases.history(case.id)] == ["open"]


def test_a_warning_case_escalates_once_and_keeps_its_answer(backend: Backend) -> None:
    node = backend.open()
    ignored = alarm(node, type_="device_offline", severity="warning")
    assert node.cases.case_of(ignored.id) is None and len(node.cases) == 0
    # the policy's later version brings it in
    node.anomalies.record(replace(ignored, severity="alarm", as_of=T0 + timedelta(hours=1)))
    assert case_of(node, ignored).level == "alarm"
    warning = alarm(node, "E2", type_="suspicious_data", severity="warning")
    case = case_of(node, warning)
    assert (case.level, case.state) == ("warning", "new")
    plant = By("plant", "enterprise", ("E2",))
    node.cases.act(case.id, "answer", plant, T0, {"text": "校准中"})
    for hours in (2, 3):  # a second alarm version raises nothing more
        node.anomalies.record(replace(warning, severity="alarm", as_of=T0 + timedelta(hours=hours)))
    raised = case_of(node, warning)
    assert (raised.level, raised.state) == ("alarm", "new") and raised.answer is not None
    steps = [(s.action, s.actor) for s in node.cases.history(case.id)]
    assert steps == [("open", "gateway"), ("answer", "plant"), ("escalate", "gateway")]


def test_an_alarm_after_a_handled_warning_case_opens_a_case_of_its_own(backend: Backend) -> None:
    node = backend.open()
    warning = alarm(node, type_="suspicious_data", severity="warning")
    case = case_of(node, warning)
    for action, details in (
        ("sign", {}),
        ("assign", {"assignee": "一中队", "deadline": deadline(1)}),
        ("verify", {"verdict": "false_alarm", "note": "校准"}),
    ):
        node.cases.act(case.id, action, OFFICER, T0, details)
    node.anomalies.record(replace(warning, severity="alarm", as_of=T0 + timedelta(hours=2)))
    before = node.cases.get(case.id)
    assert before is not None and (before.level, before.state) == ("warning", "verified")
    assert before.anomalies == (warning.id,)  # the handled case keeps its record
    now = case_of(node, warning)
    assert now.id != case.id and (now.level, now.state, now.anomalies) == (
        "alarm",
        "new",
        (warning.id,),
    )
    assert len(node.cases) == 2


def test_anomalies_of_one_enterprise_and_beijing_day_join_one_case(backend: Backend) -> None:
    node = backend.open()
    first = alarm(node, "E1", n=1, type_="suspicious_data", severity="warning")
    second = alarm(node, "E1", n=2, started_at=T0 + timedelta(hours=15))  # 23:00 Beijing
    next_day = alarm(node, "E1", n=3, started_at=T0 + timedelta(hours=16))  # 00:00 next day
    other = alarm(node, "E2", n=4)
    case = case_of(node, first)
    assert case.anomalies == (first.id, second.id) and case.level == "alarm"  # raised
    steps = node.cases.history(case.id)
    assert [(s.action, s.actor_role) for s in steps] == [("open", "system"), ("join", "system")]
    assert steps[1].details["day"] == "2025-01-10"
    assert case_of(node, next_day).id not in (case.id, case_of(node, other).id)
    assert len(node.cases) == 3
    for action, details in (
        ("sign", {}),
        ("assign", {"assignee": "A", "deadline": deadline(1)}),
        ("verify", {"verdict": "other", "note": "n"}),
    ):
        node.cases.act(case.id, action, CHIEF, T0, details)
    late = alarm(node, "E1", n=8, started_at=T0 + timedelta(hours=1))
    assert case_of(node, late).id != case.id and len(node.cases) == 4


def test_without_joining_each_anomaly_has_its_case(backend: Backend) -> None:
    node = backend.open(join_same_day=False)
    ids = {case_of(node, alarm(node, "E1", n=n)).id for n in range(3)}
    assert len(ids) == 3 == len(node.cases)


def test_an_officer_joins_an_anomaly_that_has_no_case_once(backend: Backend) -> None:
    node = backend.open()
    case = case_of(node, alarm(node, "E1"))
    loose = alarm(node, "E1", n=5, type_="device_offline", severity="warning")
    join = {"anomaly_id": loose.id, "enterprise": "E1", "day": date(2025, 1, 10)}
    joined = node.cases.act(case.id, "join", OFFICER, T0, join)
    assert joined is not None and joined.anomalies == (*case.anomalies, loose.id)
    assert case_of(node, loose).id == case.id
    with pytest.raises(Conflict):
        node.cases.act(case.id, "join", OFFICER, T0, join)
    other = case_of(node, alarm(node, "E1", n=6, started_at=T0 + timedelta(days=1)))
    with pytest.raises(Conflict, match="already"):  # in a case: the first one
        node.cases.act(other.id, "join", CHIEF, T0, {**join, "day": date(2025, 1, 11)})
    assert len(node.cases.history(other.id)) == 1


def test_queries_filter_page_and_scope(backend: Backend) -> None:
    node = backend.open()
    first = case_of(node, alarm(node, "E1"))
    backend.clock.now = T0 + timedelta(hours=2)
    second = case_of(node, alarm(node, "E2"))
    backend.clock.now = T0 + timedelta(hours=4)
    third = case_of(node, alarm(node, "E3", type_="suspicious_data", severity="warning"))
    node.cases.act(first.id, "sign", OFFICER, T0, {})
    node.cases.act(first.id, "assign", OFFICER, T0, {"assignee": "一中队", "deadline": deadline(1)})
    query = node.cases.query
    items, total = query(now=T0)
    assert total == 3 and [c.id for c in items] == [third.id, second.id, first.id]
    assert [c.id for c in query(now=T0, limit=1, offset=1)[0]] == [second.id]
    assert [c.id for c in query(now=T0, state="checking")[0]] == [first.id]
    assert [c.id for c in query(now=T0, level="warning")[0]] == [third.id]
    assert [c.id for c in query(now=T0, enterprise="E2")[0]] == [second.id]
    assert {c.id for c in query(now=T0, enterprises={"E1", "E3"})[0]} == {first.id, third.id}
    assert query(now=T0, enterprises=set()) == ([], 0)
    assert [c.id for c in query(now=T0, assignee="一中队")[0]] == [first.id]
    assert query(now=T0, overdue=True)[1] == 0 and query(now=T0, overdue=False)[1] == 3
    late = T0 + timedelta(days=2)
    assert [c.id for c in query(now=late, overdue=True)[0]] == [first.id]
    assert {c.id for c in query(now=late, overdue=False)[0]} == {second.id, third.id}
    opened = node.cases.opened_between(T0, T0 + timedelta(hours=4))
    assert [c.id for c in opened] == [first.id, second.id]  # half-open, oldest first
    assert [c.id for c in node.cases.opened_between(T0, late, {"E3"})] == [third.id]
    escalation = node.cases.overdue_or_unsigned(
        now=late, since=T0, unsigned_before=T0 + timedelta(hours=3)
    )
    assert [c.id for c in escalation] == [first.id, second.id]  # overdue; unsigned alarm
    node.cases.act(second.id, "answer", CHIEF, T0, {"text": "电话说明"})
    escalation = node.cases.overdue_or_unsigned(
        now=late, since=T0, unsigned_before=T0 + timedelta(hours=3)
    )
    assert [c.id for c in escalation] == [first.id]  # an answer is an answer


def test_the_history_is_append_only_down_to_sql(backend: Backend) -> None:
    node = backend.open()
    alarm(node)
    refused = sqlite3.DatabaseError if backend.kind == "sqlite" else psycopg.errors.RaiseException
    statements = ["UPDATE case_step SET actor = 'x'", "DELETE FROM case_step"]
    if backend.kind == "postgres":
        statements.append("TRUNCATE case_step")
    db = backend.raw()
    try:
        for sql in statements:
            with pytest.raises(refused, match="append-only"):
                db.execute(sql)
        assert db.execute("SELECT count(*) FROM case_step").fetchone()[0] == 1
    finally:
        db.close()


# -- PostgreSQL: two nodes on one database -----------------------------------------------------


def pg_node(dsn: str, clock: Clock | None = None) -> Node:
    anomalies = AnomalyStore(PgAnomalies(dsn))
    cases = CaseStore(PgCases(dsn), policy(), clock=clock or Clock())
    anomalies.add_listener(cases.on_anomaly)
    return Node(anomalies, cases)


def waiting(dsn: str, sessions: int, what: str) -> None:
    """Return once `sessions` sessions of this database wait for a lock of kind `what`
    (`advisory`, or `transactionid`: a row another transaction holds); fail after 30 s."""
    deadline_at = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = %s",
                (what,),
            ).fetchone()
            if row is not None and row[0] >= sessions:
                return
            assert time.monotonic() < deadline_at, f"no {sessions} sessions waiting for {what}"
            time.sleep(0.02)


def test_two_nodes_acting_on_one_case_one_wins_the_other_gets_conflict(pg_dsn: str) -> None:
    a, b = pg_node(pg_dsn), pg_node(pg_dsn)
    try:
        case = case_of(a, alarm(a))
        entered, release = threading.Event(), threading.Event()

        def hold(before: Case, after: Case) -> None:  # A's audit: the row stays locked
            entered.set()
            assert release.wait(30)

        results: dict[str, Any] = {}

        def act(name: str, node: Node, audit: Any) -> None:
            try:
                results[name] = node.cases.act(case.id, "sign", By(name, "officer"), T0, {}, audit)
            except Conflict as exc:
                results[name] = exc

        first = threading.Thread(target=act, args=("a", a, hold))
        first.start()
        assert entered.wait(30)
        second = threading.Thread(target=act, args=("b", b, None))
        second.start()
        waiting(pg_dsn, 1, "transactionid")  # B reads the case row A holds: it waits
        release.set()
        first.join(30)
        second.join(30)
        assert isinstance(results["a"], Case) and results["a"].signed_by == "a"
        assert isinstance(results["b"], Conflict) and "signed" in str(results["b"])
        for node in (a, b):
            kept = node.cases.get(case.id)
            assert kept is not None and kept.signed_by == "a"
        steps = [(s.action, s.actor) for s in b.cases.history(case.id)]
        assert steps == [("open", "gateway"), ("sign", "a")]
    finally:
        for node in (a, b):
            node.cases.close()
            node.anomalies.close()


def test_a_replayed_event_on_a_second_node_opens_no_second_case(pg_dsn: str) -> None:
    a, b = pg_node(pg_dsn), pg_node(pg_dsn)
    try:
        event = a.anomalies.record(make_anomaly())
        assert event is not None and len(b.cases) == 1
        b.cases.on_anomaly(event)  # B takes over and replays what A had heard
        assert len(a.cases) == 1 and b.cases.take(event.anomaly) is None
        # both hear a new one at once: the first to hold the index opens, the other finds it
        fresh = make_anomaly(enterprise="E2", subject="outlet:E2/DA001")
        taken: list[Case | None] = []
        with psycopg.connect(pg_dsn) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))
            threads = [
                threading.Thread(target=lambda n=n: taken.append(n.cases.take(fresh)))
                for n in (a, b)
            ]
            for t in threads:
                t.start()
            waiting(pg_dsn, 2, "advisory")
            holder.commit()
        for t in threads:
            t.join(30)
        assert len(taken) == 2 and taken.count(None) == 1
        case = case_of(b, fresh)
        assert len(a.cases) == 2 and case.anomalies == (fresh.id,)
        assert [s.action for s in a.cases.history(case.id)] == ["open"]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.UniqueViolation):  # one case an anomaly, in SQL
                conn.execute(
                    "INSERT INTO case_anomaly (anomaly_id, case_id) VALUES (%s, 1)", (fresh.id,)
                )
            ids = conn.execute(
                "SELECT is_identity FROM information_schema.columns"
                " WHERE table_name = 'case_file' AND column_name = 'id'"
            ).fetchone()
        assert ids == ("YES",)
    finally:
        for node in (a, b):
            node.cases.close()
            node.anomalies.close()


def test_an_action_and_its_audit_entry_in_postgresql_commit_together(pg_dsn: str) -> None:
    node = pg_node(pg_dsn)
    audit = AuditLog(PgAudit(pg_dsn))
    try:
        case = case_of(node, alarm(node))

        def record(before: Case, after: Case) -> None:
            audit.record(actor="zhang", actor_role="officer", action="case.sign", target="1")

        def record_then_fail(before: Case, after: Case) -> None:
            record(before, after)
            raise OSError("the audit entry was written, the change fails after it")

        with pytest.raises(OSError):
            node.cases.act(case.id, "sign", OFFICER, T0, {}, record_then_fail)
        assert len(audit) == 0 and len(node.cases.history(case.id)) == 1  # neither kept
        assert node.cases.act(case.id, "sign", OFFICER, T0, {}, record) is not None
        assert len(audit) == 1 and len(node.cases.history(case.id)) == 2
    finally:
        audit.close()
        node.cases.close()
        node.anomalies.close()


def test_the_case_schema_is_versioned_and_a_newer_one_refused(pg_dsn: str) -> None:
    PgCases(pg_dsn).close()
    PgCases(pg_dsn).close()  # again: nothing to do
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT component, version FROM gateway_schema").fetchall()
        assert rows == [("case store", 1)]
        conn.execute("UPDATE gateway_schema SET version = 2 WHERE component = 'case store'")
    with pytest.raises(StateError, match="newer than this release"):
        PgCases(pg_dsn)
