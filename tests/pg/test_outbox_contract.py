"""The notification outbox behaves the same on SQLite and on PostgreSQL: notices once by id,
rows per channel in order, the bound and what happens when it is full, what survives
reopening, pruning, giving up unconfigured channels, and a notifier delivering to a real HTTP
receiver across a restart.

Then PostgreSQL's own, several senders draining one outbox: a row is handed to one sender at a
time (claims), the bound holds across nodes, two notifiers with a real receiver send each
notice once, and the row a killed sender claimed is sent by another after the lease. A real
PostgreSQL: a missing server is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from prometheus_client import REGISTRY as METRICS

from gateway.anomalies.store import AnomalyStore
from gateway.cluster.pg_outbox import PgOutbox
from gateway.errors import ConfigError
from gateway.migrations import StateError
from gateway.notify.config import NotifySection
from gateway.notify.notices import Notice, anomaly_notices, notice_id
from gateway.notify.outbox import Outbox, OutboxBackend
from gateway.notify.service import Notifier
from gateway.registry import Registry, RegistryFile
from tests.notify.conftest import REGISTRY, T0, Clock, event, offline, over_limit
from tests.notify.receiver import Receiver

Where = Path | OutboxBackend


@dataclass
class Backend:
    """Opens the outbox (again: a restart) on one backend; makes its notice table refuse
    inserts for a while, as a failing database would."""

    kind: str
    where: Callable[..., Where]  # lease_s for PostgreSQL
    refuse_notices: Callable[[bool], None]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "notify.sqlite"

        def refuse_sqlite(refuse: bool) -> None:
            db = sqlite3.connect(path, isolation_level=None)
            try:
                db.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON notice"
                    " BEGIN SELECT RAISE(ABORT, 'full'); END"
                    if refuse
                    else "DROP TRIGGER refuse"
                )
            finally:
                db.close()

        yield Backend("sqlite", lambda **_: path, refuse_sqlite)
        return
    dsn = request.getfixturevalue("pg_dsn")

    def refuse_pg(refuse: bool) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if refuse:
                conn.execute(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN RAISE EXCEPTION 'full'; END $$"
                )
                conn.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON notify_notice"
                    " FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            else:
                conn.execute("DROP TRIGGER refuse ON notify_notice")
                conn.execute("DROP FUNCTION refuse()")

    yield Backend("postgres", lambda lease_s=60.0: PgOutbox(dsn, lease_s=lease_s), refuse_pg)


@pytest.fixture
def registry() -> Registry:
    return Registry(RegistryFile.model_validate(tomllib.loads(REGISTRY)))


@pytest.fixture
def open_outbox(backend: Backend) -> Iterator[Callable[..., Outbox]]:
    opened: list[Outbox] = []

    def make(max_pending: int = 10, **kw: Any) -> Outbox:
        opened.append(Outbox(backend.where(**kw), max_pending=max_pending))
        return opened[-1]

    yield make
    for outbox in opened:
        outbox.close()


def notices(registry: Registry, count: int, first: int = 0) -> list[Notice]:
    out = []
    for i in range(first, first + count):
        anomaly = over_limit(at=T0 + timedelta(hours=i))
        out += anomaly_notices(event(anomaly), None, T0 + timedelta(hours=i), registry)
    return out


def metric(name: str, channel: str) -> float:
    return METRICS.get_sample_value(name, {"channel": channel}) or 0.0


# -- the outbox: the contract ------------------------------------------------------------------


def test_a_full_channel_drops_the_new_notice_and_counts_it(
    open_outbox: Callable[..., Outbox], registry: Registry
) -> None:
    outbox = open_outbox(max_pending=2)
    before = metric("notify_dropped_total", "c-full-a")
    first, second, third = notices(registry, 3)
    assert outbox.enqueue(first, ["c-full-a", "c-full-b"]).added == ["c-full-a", "c-full-b"]
    assert outbox.enqueue(second, ["c-full-a"]).added == ["c-full-a"]
    queued = outbox.enqueue(third, ["c-full-b", "c-full-a", "c-full-b"])
    assert (queued.added, queued.dropped) == (["c-full-b"], ["c-full-a"])
    assert metric("notify_dropped_total", "c-full-a") == before + 1
    assert outbox.pending("c-full-a") == 2 and outbox.pending("c-full-b") == 2
    assert metric("notify_pending", "c-full-a") == 2
    assert outbox.enqueue(third, ["c-full-a"]).known  # remembered: raised again, nothing
    head = outbox.head("c-full-a")
    assert head is not None and head.notice.id == first.id
    outbox.delivered(head, T0)
    outbox.delivered(head, T0)  # marked once
    assert outbox.pending("c-full-a") == 1 and metric("notify_pending", "c-full-a") == 1
    fourth = notices(registry, 1, first=3)[0]
    assert outbox.enqueue(fourth, ["c-full-a"]).added == ["c-full-a"]
    assert [r[0] for r in outbox.rows("c-full-a")] == [first.id, second.id, fourth.id]
    assert [r[1] for r in outbox.rows("c-full-a")] == ["delivered", "pending", "pending"]


def test_a_notice_is_queued_once_and_survives_reopening(
    open_outbox: Callable[..., Outbox], registry: Registry
) -> None:
    outbox = open_outbox()
    (notice,) = notices(registry, 1)
    assert outbox.enqueue(notice, ["c-hook"]).added == ["c-hook"]
    assert outbox.enqueue(notice, ["c-hook", "c-robot"]).known
    head = outbox.head("c-hook")
    assert head is not None
    outbox.failed(head, "HTTP 500 " + "x" * 1000)
    outbox.close()
    again = open_outbox()
    assert again.pending("c-hook") == 1 and again.pending("c-robot") == 0
    head = again.head("c-hook")
    assert head is not None and head.notice == notice and head.attempts == 1
    assert head.created_at == notice.at
    assert again.known(notice.id) and not again.known("never")


def test_severities_and_known_ids(open_outbox: Callable[..., Outbox], registry: Registry) -> None:
    outbox = open_outbox()
    assert outbox.severity_before("a") is None
    outbox.record_severity("a", "warning", T0)
    assert outbox.severity_before("a") == "warning"
    outbox.record_severity("a", "alarm", T0)
    assert (outbox.severity_before("a"), outbox.severity_before("b")) == ("alarm", None)
    items = notices(registry, 3)
    outbox.enqueue(items[0], ["c"])
    outbox.enqueue(items[2], [])  # remembered with no channel
    asked = [n.id for n in items] + ["never"] * 2
    assert outbox.known_ids(asked) == {items[0].id, items[2].id}
    assert outbox.known_ids([]) == set()


def test_rows_of_channels_no_longer_configured_are_given_up(
    open_outbox: Callable[..., Outbox], registry: Registry
) -> None:
    outbox = open_outbox()
    items = notices(registry, 3)
    for notice in items:
        outbox.enqueue(notice, ["c-gone-old", "c-gone-kept"])
    head = outbox.head("c-gone-old")
    assert head is not None
    outbox.delivered(head, T0)
    outbox.close()
    before = metric("notify_given_up_total", "c-gone-old")
    outbox = open_outbox()
    assert outbox.pending("c-gone-old") == 2
    with structlog.testing.capture_logs() as logs:
        assert outbox.give_up_unconfigured({"c-gone-kept"}, T0) == {"c-gone-old": 2}
        assert outbox.give_up_unconfigured({"c-gone-kept"}, T0) == {}  # once
    (line,) = [e for e in logs if e["log_level"] == "warning"]
    assert line["channels"] == {"c-gone-old": 2}
    assert outbox.pending("c-gone-old") == 0 and outbox.pending("c-gone-kept") == 3
    assert metric("notify_pending", "c-gone-old") == 0
    assert metric("notify_given_up_total", "c-gone-old") == before + 2
    assert [r[1] for r in outbox.rows("c-gone-old")] == ["delivered", "given_up", "given_up"]
    assert outbox.head("c-gone-old") is None
    assert outbox.prune(T0 + timedelta(days=8), timedelta(days=7)) == 3
    assert outbox.rows("c-gone-old") == [] and outbox.enqueue(items[1], ["c-gone-old"]).known


def test_prune_keeps_pending_rows_and_bounds_done_ones(
    open_outbox: Callable[..., Outbox], registry: Registry
) -> None:
    outbox = open_outbox(max_pending=3)
    items = notices(registry, 6)
    for notice in items[:3]:
        outbox.enqueue(notice, ["c"])
        head = outbox.head("c")
        assert head is not None
        outbox.delivered(head, T0)
    for notice in items[3:5]:
        outbox.enqueue(notice, ["c"])
    assert outbox.prune(T0 + timedelta(hours=1), timedelta(days=7)) == 0
    assert outbox.prune(T0 + timedelta(days=8), timedelta(days=7)) == 3
    assert [r[1] for r in outbox.rows("c")] == ["pending", "pending"]
    outbox.record_severity("old", "warning", T0)
    outbox.prune(T0 + timedelta(days=40), timedelta(days=7))
    assert not outbox.known(items[0].id) and outbox.known(items[3].id)
    assert outbox.severity_before("old") is None


def test_done_rows_are_kept_up_to_max_pending_per_channel(
    open_outbox: Callable[..., Outbox], registry: Registry
) -> None:
    outbox = open_outbox(max_pending=2)
    items = notices(registry, 5)
    for notice in items:
        outbox.enqueue(notice, ["c"])
        head = outbox.head("c")
        assert head is not None
        outbox.delivered(head, T0)
    assert outbox.prune(T0, timedelta(days=7)) == 3
    assert [r[0] for r in outbox.rows("c")] == [items[3].id, items[4].id]
    assert all(outbox.enqueue(n, ["c"]).known for n in items)


# -- the notifier over the outbox: the contract -------------------------------------------------


def section(*channels: dict[str, Any], **values: Any) -> NotifySection:
    fast = {"retry_initial_s": 0.02, "retry_max_s": 0.1, "timeout_s": 0.5}
    return NotifySection.model_validate({**fast, **values, "channels": list(channels)})


def hook(receiver: Receiver, name: str) -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "url": f"{receiver.url}/hook"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


class Running:
    """A notifier over `where` and an anomaly store of `folder`, its `run` as a task."""

    def __init__(
        self, folder: Path, where: Where, registry: Registry, notify: NotifySection
    ) -> None:
        self.anomalies = AnomalyStore(folder / "anomalies.sqlite")
        self.notifier = Notifier(notify, where, lambda: registry, clock=lambda: datetime.now(UTC))
        self.outbox = self.notifier.outbox
        self.anomalies.add_listener(self.notifier.on_anomaly)
        self.task = asyncio.create_task(self.notifier.run())

    async def stop(self) -> None:
        if self.task.done():
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.notifier.close()
        self.anomalies.close()


@pytest.fixture
async def start(
    backend: Backend, registry: Registry, tmp_path: Path
) -> AsyncIterator[Callable[..., Running]]:
    made: list[Running] = []

    def make(notify: NotifySection, folder: str = "node", **kw: Any) -> Running:
        (tmp_path / folder).mkdir(exist_ok=True)
        made.append(Running(tmp_path / folder, backend.where(**kw), registry, notify))
        return made[-1]

    yield make
    for running in made:
        await running.stop()


async def test_nothing_lost_or_sent_twice_across_a_restart(
    receiver: Receiver, start: Callable[..., Running]
) -> None:
    items = [over_limit("E1", at=T0 + timedelta(hours=i)) for i in range(5)]
    first = start(section(hook(receiver, "c-restart")))
    for anomaly in items[:2]:
        first.anomalies.record(anomaly)
    await receiver.wait_for(2)
    assert await receiver.wait_until(lambda: first.outbox.pending("c-restart") == 0)
    await receiver.stop()
    for anomaly in items[2:]:
        first.anomalies.record(anomaly)
    # in order: the first pending row is tried, the two behind it wait
    assert await receiver.wait_until(lambda: first.outbox.rows("c-restart")[2][2] >= 1)
    assert [r[2] for r in first.outbox.rows("c-restart")[3:]] == [0, 0]
    await first.stop()  # three rows pending
    await receiver.start()
    second = start(section(hook(receiver, "c-restart")))
    assert second.outbox.pending("c-restart") == 3
    await receiver.wait_for(5)
    assert await receiver.wait_until(lambda: second.outbox.pending("c-restart") == 0)
    for anomaly in items:  # the same events again (a replay) raise nothing new
        second.notifier.raise_notice(anomaly_notices(event(anomaly), None, T0, None)[0])
    assert second.outbox.pending("c-restart") == 0
    ids = receiver.delivery_ids()
    assert len(ids) == 5 and len(set(ids)) == 5
    assert [r.json()["anomaly"]["id"] for r in receiver.accepted] == [a.id for a in items]


def test_an_escalation_the_outbox_could_not_queue_is_queued_with_the_next_event(
    backend: Backend, registry: Registry, tmp_path: Path, clock: Clock
) -> None:
    anomalies = AnomalyStore(tmp_path / "anomalies.sqlite")
    notify = NotifySection.model_validate(
        {"channels": [{"name": "c-officers", "kind": "webhook", "url": "http://127.0.0.1:1/"}]}
    )
    n = Notifier(notify, backend.where(), lambda: registry, clock=clock)
    try:
        anomalies.add_listener(n.on_anomaly)
        warning = offline("E1")
        anomalies.record(warning)
        assert [r[0] for r in n.outbox.rows("c-officers")] == [
            notice_id("anomaly_opened", warning.id)
        ]
        backend.refuse_notices(True)  # a real failure of the outbox's writes
        failed_before = METRICS.get_sample_value("errors_total", {"stage": "notify"}) or 0.0
        alarm = replace(warning, severity="alarm", evidence={"silence_s": 3600})
        anomalies.record(alarm)  # the escalation: not queued
        errors = METRICS.get_sample_value("errors_total", {"stage": "notify"})
        assert errors == failed_before + 1
        assert len(n.outbox.rows("c-officers")) == 1
        backend.refuse_notices(False)
        anomalies.record(replace(alarm, evidence={"silence_s": 7200}))
        escalated = notice_id("anomaly_escalated", warning.id)
        assert [r[0] for r in n.outbox.rows("c-officers")][1:] == [escalated]
        assert n.outbox.severity_before(warning.id) == "alarm"
        anomalies.record(replace(alarm, evidence={"silence_s": 9000}))
        assert len(n.outbox.rows("c-officers")) == 2  # once
    finally:
        n.close()
        anomalies.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- PostgreSQL: several senders on one outbox ---------------------------------------------------


def test_a_row_is_handed_to_one_sender_at_a_time(pg_dsn: str, registry: Registry) -> None:
    """Two senders in threads drain one channel of 120 rows: each row is handed out once."""
    writer = Outbox(PgOutbox(pg_dsn), max_pending=1000)
    for notice in notices(registry, 120):
        writer.enqueue(notice, ["c-shared"])
    senders = [Outbox(PgOutbox(pg_dsn), max_pending=1000) for _ in range(2)]
    handed: list[list[int]] = [[], []]

    def drain(index: int) -> None:
        outbox = senders[index]
        while outbox.pending("c-shared") > 0:
            row = outbox.head("c-shared")
            if row is None:  # the other one holds the channel
                time.sleep(0.001)
                continue
            handed[index].append(row.seq)
            outbox.delivered(row, T0)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        everything = sorted(handed[0] + handed[1])
        assert len(everything) == 120 and len(set(everything)) == 120
        assert [r[1] for r in writer.rows("c-shared")] == ["delivered"] * 120
        assert writer.pending("c-shared") == 0
    finally:
        for outbox in (writer, *senders):
            outbox.close()


def test_the_channel_stays_with_the_sender_that_holds_it(pg_dsn: str, registry: Registry) -> None:
    a = Outbox(PgOutbox(pg_dsn, lease_s=60.0), max_pending=10)
    b = Outbox(PgOutbox(pg_dsn, lease_s=60.0), max_pending=10)
    try:
        first, second = notices(registry, 2)
        a.enqueue(first, ["c-held"])
        b.enqueue(second, ["c-held"])
        row = a.head("c-held")
        assert row is not None and row.notice.id == first.id
        assert b.head("c-held") is None  # not the row behind it either: in order
        a.failed(row, "HTTP 500")  # retrying keeps the channel
        assert b.head("c-held") is None
        again = a.head("c-held")
        assert again is not None and again.seq == row.seq and again.attempts == 1
        a.delivered(again, T0)
        following = b.head("c-held")
        assert following is not None and following.notice.id == second.id
        assert a.head("c-held") is None  # now b holds it
        b.close()  # a clean stop lets go of its claims at once
        taken = a.head("c-held")
        assert taken is not None and taken.notice.id == second.id
    finally:
        a.close()
        b.close()


def test_the_bound_holds_across_nodes(pg_dsn: str, registry: Registry) -> None:
    """Two nodes enqueue 50 notices each at once into a channel of 30."""
    nodes = [Outbox(PgOutbox(pg_dsn), max_pending=30) for _ in range(2)]
    items = notices(registry, 100)
    dropped = [0, 0]

    def enqueue(index: int) -> None:
        for notice in items[index::2]:
            dropped[index] += len(nodes[index].enqueue(notice, ["c-bound", "c-bound-2"]).dropped)

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert nodes[0].pending("c-bound") == nodes[1].pending("c-bound") == 30
        assert len(nodes[0].rows("c-bound")) == 30
        assert sum(dropped) == 2 * 70  # both channels are full past 30
        row = nodes[1].head("c-bound")
        assert row is not None
        nodes[1].delivered(row, T0)  # room made on one node is room on the other
        later = notices(registry, 1, first=100)[0]
        assert nodes[0].enqueue(later, ["c-bound"]).added == ["c-bound"]
        assert nodes[0].pending("c-bound") == 30
    finally:
        for node in nodes:
            node.close()


async def test_two_notifiers_on_one_outbox_send_each_notice_once(
    pg_dsn: str, registry: Registry, tmp_path: Path, receiver: Receiver
) -> None:
    notify = section(hook(receiver, "c-two-a"), hook(receiver, "c-two-b"))
    nodes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        nodes.append(Running(tmp_path / name, PgOutbox(pg_dsn), registry, notify))
    try:
        items = notices(registry, 40)
        for i, notice in enumerate(items[:20]):  # one at a time: each node's sender wakes
            nodes[i % 2].notifier.raise_notice(notice)
            await receiver.wait_for(2 * (i + 1))
        for i, notice in enumerate(items[20:]):  # then all at once
            nodes[i % 2].notifier.raise_notice(notice)
        await receiver.wait_for(80, timeout_s=60)
        for channel in ("c-two-a", "c-two-b"):
            assert await receiver.wait_until(lambda c=channel: nodes[0].outbox.pending(c) == 0)
        # every row is marked delivered: none can be sent again
        sent = [(r.json()["id"], r.headers["X-Gateway-Delivery"]) for r in receiver.accepted]
        assert len(sent) == 80 and len(set(sent)) == 40
        with psycopg.connect(pg_dsn) as conn:
            per_row = conn.execute(
                "SELECT channel, count(*), count(DISTINCT notice_id), min(state), max(state)"
                " FROM notify_delivery GROUP BY channel ORDER BY channel"
            ).fetchall()
            by_sender = conn.execute(
                "SELECT claimed_by, count(*) FROM notify_delivery GROUP BY claimed_by"
            ).fetchall()
        assert per_row == [(c, 40, 40, "delivered", "delivered") for c in ("c-two-a", "c-two-b")]
        assert len(by_sender) == 2  # both nodes sent
    finally:
        for node in nodes:
            await node.stop()


async def test_a_killed_senders_notice_is_sent_by_another_after_the_lease(
    pg_dsn: str, registry: Registry, tmp_path: Path, receiver: Receiver
) -> None:
    lease_s = 3.0
    killed = Outbox(PgOutbox(pg_dsn, lease_s=lease_s), max_pending=10)
    (notice,) = notices(registry, 1)
    assert killed.enqueue(notice, ["c-killed"]).added == ["c-killed"]
    claimed_at = time.monotonic()  # at most when the database wrote the claim
    claimed = killed.head("c-killed")  # claimed, then never delivered nor failed
    assert claimed is not None
    (tmp_path / "b").mkdir()
    other = Running(
        tmp_path / "b",
        PgOutbox(pg_dsn, lease_s=lease_s),
        registry,
        section(hook(receiver, "c-killed")),
    )
    try:
        other.notifier.sender.wake("c-killed")  # it looks while the claim holds ...
        await asyncio.sleep(0.3)
        assert receiver.accepted == []
        (got,) = await receiver.wait_for(1, timeout_s=30)  # ... and sends once it ran out
        assert got.headers["X-Gateway-Delivery"] == notice.id
        assert time.monotonic() - claimed_at >= lease_s
        assert await receiver.wait_until(lambda: other.outbox.rows("c-killed")[0][1] == "delivered")
        assert len(receiver.accepted) == 1
    finally:
        await other.stop()
        killed.close()


def test_a_lease_shorter_than_two_requests_is_refused(pg_dsn: str, registry: Registry) -> None:
    notify = section({"name": "c", "kind": "webhook", "url": "http://127.0.0.1:1/"}, timeout_s=10)
    with pytest.raises(ConfigError, match="more than half the shared outbox's lease"):
        Notifier(notify, PgOutbox(pg_dsn, lease_s=15.0), lambda: registry)


def test_the_schema_is_versioned_and_a_newer_one_refused(pg_dsn: str) -> None:
    PgOutbox(pg_dsn).close()
    PgOutbox(pg_dsn).close()  # again: nothing to do
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT component, version FROM gateway_schema").fetchall()
        assert rows == [("notification outbox", 1)]
        conn.execute(
            "UPDATE gateway_schema SET version = 2 WHERE component = 'notification outbox'"
        )
    with pytest.raises(StateError, match="notification outbox format version 2 is newer"):
        PgOutbox(pg_dsn)
