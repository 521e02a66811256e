"""The anomaly store and the control regime behave the same on SQLite and on PostgreSQL.

Each contract test runs against both backends (a real PostgreSQL: a missing server is an
error, never a skip); the tests after them are PostgreSQL's own: two processes' stores on
one database, the order of events under concurrent writers, the schema's version.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.cluster.pg_regime import PgRegime
from gateway.migrations import StateError
from gateway.regime import AlreadyWithdrawn, Regime
from gateway.regime.model import AlertSpec, OrderSpec

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 4, 5, 9, 0, tzinfo=CST)
Opener = Callable[[], AnomalyStore]
RegimeOpener = Callable[[], Regime]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store (again: a restart) on one backend; closes what it opened."""
    opened: list[AnomalyStore] = []
    if request.param == "sqlite":
        path = tmp_path / "anomalies.sqlite"

        def make() -> AnomalyStore:
            opened.append(AnomalyStore(path))
            return opened[-1]
    else:
        dsn = request.getfixturevalue("pg_dsn")

        def make() -> AnomalyStore:
            opened.append(AnomalyStore(PgAnomalies(dsn)))
            return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def open_regime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegimeOpener]:
    opened: list[Regime] = []
    if request.param == "sqlite":
        path = tmp_path / "regime.sqlite"

        def make() -> Regime:
            opened.append(Regime(path))
            return opened[-1]
    else:
        dsn = request.getfixturevalue("pg_dsn")

        def make() -> Regime:
            opened.append(Regime(PgRegime(dsn)))
            return opened[-1]

    yield make
    for regime in opened:
        regime.close()


def over_limit(enterprise: str = "E1", hour: int = 0, subject: str = "DA001/w01018") -> Anomaly:
    started = T0 + timedelta(hours=hour)
    return Anomaly(
        type="over_limit",
        severity="alarm",
        enterprise=enterprise,
        subject=subject,
        started_at=started,
        summary="超标",
        evidence={"hours": [{"value": 80.0}]},
        rule="over_limit",
        detected_at=started + timedelta(minutes=5),
    )


# -- the anomaly store ---------------------------------------------------------------------


def test_events_follow_the_life_of_an_anomaly(open_store: Opener) -> None:
    store = open_store()
    heard: list[int] = []
    store.add_listener(lambda event: heard.append(event.seq))
    first = over_limit()
    opened = store.record(first)
    assert opened is not None and opened.event == "opened"
    assert store.record(first) is None  # the same content again: no event
    later = first.updated(T0 + timedelta(hours=1), evidence_hours=2)
    updated = store.record(replace_detected(later, T0 + timedelta(hours=2)))
    assert updated is not None and updated.event == "updated" and updated.seq > opened.seq
    # the first detection counts, whatever the later version says
    assert updated.anomaly.detected_at == first.detected_at
    closed = store.record(later.closed(T0 + timedelta(hours=2)))
    assert closed is not None and closed.event == "closed"
    assert store.record(later) is None  # a replay of an earlier stage: stale
    assert [e.event for e in store.events_of(first.id)] == ["opened", "updated", "closed"]
    assert heard == [opened.seq, updated.seq, closed.seq]
    assert store.last_seq() == closed.seq
    assert [e.seq for e in store.events_after(opened.seq)] == [updated.seq, closed.seq]
    assert [e.seq for e in store.events_after(opened.seq, limit=1)] == [updated.seq]
    got = store.get(first.id)
    assert got is not None and got.state == "closed" and got.ended_at == T0 + timedelta(hours=2)
    assert store.get("no-such-id") is None


def replace_detected(anomaly: Anomaly, at: datetime) -> Anomaly:
    from dataclasses import replace

    return replace(anomaly, detected_at=at)


def test_queries_filter_and_page_newest_first(open_store: Opener) -> None:
    store = open_store()
    a = over_limit("E1", 0)
    b = over_limit("E2", 2)
    c = over_limit("E1", 4, subject="DA002/w01018")
    for anomaly in (a, b, c):
        store.record(anomaly)
    store.record(a.closed(T0 + timedelta(hours=1)))
    items, total = store.query()
    assert total == 3 and [x.id for x in items] == [c.id, b.id, a.id]
    assert {x.id for x in store.query(enterprise="E1")[0]} == {a.id, c.id}
    assert {x.id for x in store.query(enterprises={"E2"})[0]} == {b.id}
    assert store.query(enterprises=set())[1] == 0
    assert {x.id for x in store.query(state="open")[0]} == {b.id, c.id}
    assert store.query(type_="over_limit", family=a.family)[1] == 3
    assert store.query(family="no-such-family")[1] == 0
    # overlapping [since, until]: a ended at 1 h, so a window from 1.5 h leaves it out
    assert {x.id for x in store.query(since=T0 + timedelta(hours=1, minutes=30))[0]} == {
        b.id,
        c.id,
    }
    assert {x.id for x in store.query(until=T0 + timedelta(hours=1))[0]} == {a.id}
    page, total = store.query(limit=1, offset=1)
    assert total == 3 and [x.id for x in page] == [b.id]
    assert {x.id for x in store.open_anomalies()} == {b.id, c.id}


def test_a_restart_keeps_anomalies_and_the_event_stream(open_store: Opener) -> None:
    store = open_store()
    first = store.record(over_limit())
    assert first is not None
    store.close()
    again = open_store()  # the schema is there: opening migrates nothing
    assert again.last_seq() == first.seq
    assert again.record(over_limit()) is None
    second = again.record(over_limit(hour=1))
    assert second is not None and second.seq > first.seq
    assert [e.seq for e in again.events_after(0)] == [first.seq, second.seq]


async def test_a_waiting_stream_wakes_on_a_new_event(open_store: Opener) -> None:
    store = open_store()
    waiter = asyncio.create_task(store.wait_for_events(60.0))
    await asyncio.sleep(0)
    store.record(over_limit())
    await waiter
    assert len(store.events_after(0)) == 1


# -- the control regime ---------------------------------------------------------------------


def order_spec(enterprise: str = "E1", hours: int = 4) -> OrderSpec:
    return OrderSpec(
        kind="shutdown", enterprise=enterprise, starts_at=T0, ends_at=T0 + timedelta(hours=hours)
    )


def alert_spec() -> AlertSpec:
    return AlertSpec(level="orange", regions=["R1"], starts_at=T0, ends_at=T0 + timedelta(hours=6))


def test_orders_and_alerts_are_in_force_and_withdrawn_once(open_regime: RegimeOpener) -> None:
    regime = open_regime()
    order = regime.add_order(order_spec(), issued_by="chief")
    alert = regime.add_alert(alert_spec(), issued_by="chief")
    state = regime.in_force("E1", "R1", T0 + timedelta(hours=1))
    assert [o.id for o in state.orders] == [order.id] and state.level == "orange"
    withdrawn = regime.withdraw_order(order.id, by="chief", at=T0 + timedelta(hours=2))
    assert withdrawn is not None and withdrawn.withdrawn_by == "chief"
    with pytest.raises(AlreadyWithdrawn):
        regime.withdraw_order(order.id, by="other", at=T0 + timedelta(hours=3))
    assert regime.in_force("E1", "R1", T0 + timedelta(hours=3)).orders == []
    assert regime.withdraw_alert(alert.id, by="chief", at=T0 + timedelta(hours=1)) is not None
    assert regime.withdraw_order("nope", by="chief", at=T0) is None
    assert T0 + timedelta(hours=2) in regime.boundaries("E1", "R1", T0 + timedelta(hours=5))
    regime.close()
    again = open_regime()  # a restart keeps everything
    kept = again.get_order(order.id)
    assert kept is not None and kept.withdrawn_at == T0 + timedelta(hours=2)
    assert again.in_force("E1", "R1", T0 + timedelta(hours=1)).orders[0].id == order.id
    assert [a.id for a in again.list_alerts()] == [alert.id]
    assert again.delete_order(order.id) and again.get_order(order.id) is None
    assert again.delete_alert(alert.id) and again.list_alerts() == []


def test_a_failing_audit_stores_nothing(open_regime: RegimeOpener) -> None:
    regime = open_regime()
    audited: list[str] = []

    def refuse(*_records: object) -> None:
        raise RuntimeError("the audit log is full")

    with pytest.raises(RuntimeError):
        regime.add_order(order_spec(), audit=refuse)
    kept = regime.add_order(order_spec(), audit=lambda o: audited.append(o.id))
    with pytest.raises(RuntimeError):
        regime.withdraw_order(kept.id, by="chief", at=T0, audit=refuse)
    regime.close()
    again = open_regime()
    assert [o.id for o in again.list_orders()] == audited == [kept.id]
    still = again.get_order(kept.id)
    assert still is not None and still.withdrawn_at is None


# -- PostgreSQL: shared by several processes -------------------------------------------------


def wait_until(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Poll `check` until it holds (a notification travels between connections)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def test_another_process_event_wakes_the_stream_of_this_one(pg_dsn: str) -> None:
    node_a = AnomalyStore(PgAnomalies(pg_dsn))
    node_b = AnomalyStore(PgAnomalies(pg_dsn))
    try:
        heard_by_b: list[int] = []
        node_b.add_listener(lambda event: heard_by_b.append(event.seq))
        waiter = asyncio.create_task(node_b.wait_for_events(60.0))
        await asyncio.sleep(0)
        event = await asyncio.to_thread(node_a.record, over_limit())
        assert event is not None
        await waiter
        assert [e.seq for e in node_b.events_after(0)] == [event.seq]
        assert heard_by_b == []  # listeners (publication) run on the recording node only
        assert node_b.record(over_limit()) is None  # B sees A's state: no duplicate event
    finally:
        node_a.close()
        node_b.close()


def test_events_of_concurrent_writers_appear_in_seq_order(pg_dsn: str) -> None:
    """A reader that follows `events_after(last)` while two nodes write misses none."""
    writers = [AnomalyStore(PgAnomalies(pg_dsn)) for _ in range(2)]
    reader = AnomalyStore(PgAnomalies(pg_dsn))
    per_writer = 40
    done = threading.Event()
    seen: list[int] = []

    def write(store: AnomalyStore, enterprise: str) -> None:
        for hour in range(per_writer):
            store.record(over_limit(enterprise, hour))

    def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for event in reader.events_after(last):
                seen.append(event.seq)
                last = event.seq
            if finished:
                return

    threads = [threading.Thread(target=write, args=(w, f"E{i}")) for i, w in enumerate(writers)]
    follower = threading.Thread(target=follow)
    follower.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    follower.join()
    try:
        everything = [e.seq for e in reader.events_after(0, limit=10_000)]
        assert len(everything) == 2 * per_writer
        assert seen == everything  # none skipped, none twice, in order
    finally:
        for store in (*writers, reader):
            store.close()


def test_an_order_issued_on_one_node_is_in_force_on_the_other(pg_dsn: str) -> None:
    node_a = Regime(PgRegime(pg_dsn))
    node_b = Regime(PgRegime(pg_dsn))
    try:
        order = node_a.add_order(order_spec(), issued_by="chief")
        at = T0 + timedelta(hours=1)
        assert wait_until(
            lambda: [o.id for o in node_b.in_force("E1", "R1", at).orders] == [order.id]
        )
        node_a.withdraw_order(order.id, by="chief", at=at)
        # whether or not B has heard of it yet, the order is withdrawn once
        with pytest.raises(AlreadyWithdrawn):
            node_b.withdraw_order(order.id, by="other", at=at + timedelta(hours=1))
        after = node_b.get_order(order.id)
        assert after is not None and after.withdrawn_by == "chief"
    finally:
        node_a.close()
        node_b.close()


def test_the_schema_is_versioned_and_a_newer_one_refused(pg_dsn: str) -> None:
    PgAnomalies(pg_dsn).close()
    PgRegime(pg_dsn).close()
    PgAnomalies(pg_dsn).close()  # again: nothing to do
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT component, version FROM gateway_schema ORDER BY 1").fetchall()
        assert rows == [("anomaly store", 1), ("regime store", 1)]
        conn.execute("UPDATE gateway_schema SET version = 9 WHERE component = 'regime store'")
    with pytest.raises(StateError, match="newer than this release"):
        PgRegime(pg_dsn)
