"""The outbox file: notices once by id, rows per channel in order, the bound per channel and
what happens when it is full, what survives reopening, pruning, and its schema version."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from prometheus_client import REGISTRY as METRICS

from gateway.migrations import StateError
from gateway.notify.notices import Notice, anomaly_notices
from gateway.notify.outbox import SCHEMA_VERSION, Outbox
from gateway.registry import Registry
from tests.notify.conftest import T0, event, over_limit


def notices(registry: Registry, count: int) -> list[Notice]:
    out = []
    for i in range(count):
        anomaly = over_limit(at=T0 + timedelta(hours=i))
        out += anomaly_notices(event(anomaly), None, T0 + timedelta(hours=i), registry)
    return out


def dropped(channel: str) -> float:
    return METRICS.get_sample_value("notify_dropped_total", {"channel": channel}) or 0.0


def test_a_full_channel_drops_the_new_notice_and_counts_it(
    tmp_path: Path, registry: Registry
) -> None:
    outbox = Outbox(tmp_path / "notify.sqlite", max_pending=2)
    before = dropped("full-a")
    first, second, third = notices(registry, 3)
    assert outbox.enqueue(first, ["full-a", "full-b"]).added == ["full-a", "full-b"]
    assert outbox.enqueue(second, ["full-a"]).added == ["full-a"]
    queued = outbox.enqueue(third, ["full-a", "full-b"])
    assert (queued.added, queued.dropped) == (["full-b"], ["full-a"])
    assert dropped("full-a") == before + 1
    assert outbox.pending("full-a") == 2 and outbox.pending("full-b") == 2
    gauge = METRICS.get_sample_value("notify_pending", {"channel": "full-a"})
    assert gauge == 2
    # the dropped notice is remembered: raised again, it adds nothing
    assert outbox.enqueue(third, ["full-a"]).known
    # delivering makes room again, in order
    head = outbox.head("full-a")
    assert head is not None and head.notice.id == first.id
    outbox.delivered(head, T0)
    assert outbox.pending("full-a") == 1
    fourth = notices(registry, 4)[3]
    assert outbox.enqueue(fourth, ["full-a"]).added == ["full-a"]
    assert [r[0] for r in outbox.rows("full-a")] == [first.id, second.id, fourth.id]
    outbox.close()


def test_a_notice_is_queued_once_and_survives_reopening(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "notify.sqlite"
    outbox = Outbox(path, max_pending=10)
    (notice,) = notices(registry, 1)
    assert outbox.enqueue(notice, ["hook"]).added == ["hook"]
    assert outbox.enqueue(notice, ["hook", "robot"]).known
    head = outbox.head("hook")
    assert head is not None
    outbox.failed(head, "HTTP 500")
    outbox.close()
    again = Outbox(path, max_pending=10)
    assert again.pending("hook") == 1 and again.pending("robot") == 0
    head = again.head("hook")
    assert head is not None and head.notice == notice and head.attempts == 1
    assert again.known(notice.id)
    again.close()


def test_severities_recorded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "notify.sqlite", max_pending=10)
    assert outbox.severity_before("a") is None
    outbox.record_severity("a", "warning", T0)
    assert outbox.severity_before("a") == "warning"
    outbox.record_severity("a", "alarm", T0)
    assert (outbox.severity_before("a"), outbox.severity_before("b")) == ("alarm", None)
    outbox.close()


def test_known_ids_in_one_query(tmp_path: Path, registry: Registry) -> None:
    outbox = Outbox(tmp_path / "notify.sqlite", max_pending=10)
    items = notices(registry, 3)
    outbox.enqueue(items[0], ["c"])
    outbox.enqueue(items[2], [])  # remembered with no channel
    asked = [n.id for n in items] + ["never"] * 2
    assert outbox.known_ids(asked) == {items[0].id, items[2].id}
    assert outbox.known_ids([]) == set()
    outbox.close()


def given_up(channel: str) -> float:
    return METRICS.get_sample_value("notify_given_up_total", {"channel": channel}) or 0.0


def test_rows_of_channels_no_longer_configured_are_given_up(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "notify.sqlite"
    outbox = Outbox(path, max_pending=10)
    items = notices(registry, 3)
    for notice in items:
        outbox.enqueue(notice, ["gone-old", "gone-kept"])
    head = outbox.head("gone-old")
    assert head is not None
    outbox.delivered(head, T0)
    outbox.close()
    before = given_up("gone-old")
    outbox = Outbox(path, max_pending=10)
    assert outbox.pending("gone-old") == 2
    with structlog.testing.capture_logs() as logs:
        assert outbox.give_up_unconfigured({"gone-kept"}, T0) == {"gone-old": 2}
        assert outbox.give_up_unconfigured({"gone-kept"}, T0) == {}  # once
    (line,) = [e for e in logs if e["log_level"] == "warning"]
    assert line["channels"] == {"gone-old": 2}
    assert outbox.pending("gone-old") == 0 and outbox.pending("gone-kept") == 3
    assert METRICS.get_sample_value("notify_pending", {"channel": "gone-old"}) == 0
    assert given_up("gone-old") == before + 2
    assert [r[1] for r in outbox.rows("gone-old")] == ["delivered", "given_up", "given_up"]
    assert outbox.head("gone-old") is None
    # pruned like any done row; their notices are still remembered, so raised again adds nothing
    assert outbox.prune(T0 + timedelta(days=8), timedelta(days=7)) == 3
    assert outbox.rows("gone-old") == [] and outbox.enqueue(items[1], ["gone-old"]).known
    outbox.close()


def test_prune_keeps_pending_rows_and_bounds_done_ones(tmp_path: Path, registry: Registry) -> None:
    outbox = Outbox(tmp_path / "notify.sqlite", max_pending=3)
    items = notices(registry, 6)
    for notice in items[:3]:
        outbox.enqueue(notice, ["c"])
        head = outbox.head("c")
        assert head is not None
        outbox.delivered(head, T0)
    for notice in items[3:5]:
        outbox.enqueue(notice, ["c"])
    # three done, two pending: nothing old enough yet
    assert outbox.prune(T0 + timedelta(hours=1), timedelta(days=7)) == 0
    # a week on: the done rows go, the pending ones stay
    assert outbox.prune(T0 + timedelta(days=8), timedelta(days=7)) == 3
    assert [r[1] for r in outbox.rows("c")] == ["pending", "pending"]
    # forty days on, the notices of the done rows are forgotten; the pending ones' are not
    outbox.prune(T0 + timedelta(days=40), timedelta(days=7))
    assert not outbox.known(items[0].id) and outbox.known(items[3].id)
    outbox.close()


def test_done_rows_are_kept_up_to_max_pending_per_channel(
    tmp_path: Path, registry: Registry
) -> None:
    outbox = Outbox(tmp_path / "notify.sqlite", max_pending=2)
    items = notices(registry, 5)
    for notice in items:
        outbox.enqueue(notice, ["c"])
        head = outbox.head("c")
        assert head is not None
        outbox.delivered(head, T0)
    assert outbox.prune(T0, timedelta(days=7)) == 3
    assert [r[0] for r in outbox.rows("c")] == [items[3].id, items[4].id]
    # their notices are still remembered: raised again, nothing is queued
    assert all(outbox.enqueue(n, ["c"]).known for n in items)
    outbox.close()


def test_a_file_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notify.sqlite"
    Outbox(path, max_pending=1).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="notification outbox format version 2 is newer"):
        Outbox(path, max_pending=1)
