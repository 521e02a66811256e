"""The notification outbox: SQLite (standard library), its own file (``notify.sqlite`` in the
data folder), schema versioned with `gateway.migrations`; or PostgreSQL, shared by the nodes
of a cluster (`gateway.cluster.pg_outbox`), with the same tables, bounds and pruning.

`notice` holds each notice once, by its stable id, so a notice raised again (a replayed event,
a case found again after a restart) adds nothing; `delivery` holds one row per (notice,
channel): pending until delivered or given up. Writes are single short transactions in WAL mode
with ``synchronous=NORMAL``: a power cut may lose the last notices, never corrupt the file.

Bounds: at most `max_pending` pending rows per channel; a notice for a full channel is dropped
for that channel (still remembered, so it is not raised again), counted in
`notify_dropped_total{channel}` and logged at most once a minute per channel. The pending rows
of a channel no longer configured are given up at start (`give_up_unconfigured`). Done rows
(delivered or given up) are deleted after `keep_done` and beyond `max_pending` per channel, the
newest kept; remembered notices after `REMEMBER` or beyond `MAX_REMEMBERED`, unless a pending
row still needs them; the severities seen (for escalations) after `REMEMBER`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from gateway import metrics
from gateway.migrations import Migration, immediate, migrate
from gateway.ratelimit import LogLimiter

from ..anomalies.types import Severity
from .notices import Notice

log = structlog.get_logger("gateway.notify")

REMEMBER = timedelta(days=35)  # notice ids (and severities seen) are remembered this long
MAX_REMEMBERED = 200_000

_SCHEMA_V1 = """
CREATE TABLE notice (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX notice_created ON notice (created_at);
CREATE TABLE delivery (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notice_id TEXT NOT NULL REFERENCES notice (id),
    channel TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'given_up')),
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at TEXT,
    UNIQUE (notice_id, channel)
);
CREATE INDEX delivery_pending ON delivery (channel, state, seq);
CREATE INDEX delivery_notice ON delivery (notice_id);
CREATE TABLE anomaly_severity (
    anomaly_id TEXT PRIMARY KEY,
    severity TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX anomaly_severity_seen ON anomaly_severity (seen_at);
"""

# (version, step) in order; append a step for every change of the schema, never edit one
MIGRATIONS: list[Migration] = [(1, _SCHEMA_V1)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass(frozen=True, slots=True)
class Pending:
    """The oldest undelivered row of a channel."""

    seq: int
    channel: str
    notice: Notice
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class Enqueued:
    added: list[str]  # channels that got a row
    dropped: list[str]  # channels that were full
    known: bool = False  # the notice was raised before: nothing done


# what a backend's enqueue did: [(channel, its pending rows now)] added, channels full
Queued = tuple[list[tuple[str, int]], list[str]]


class OutboxBackend(Protocol):
    """Where an `Outbox` keeps notices and deliveries: this module's SQLite file, or PostgreSQL
    (`gateway.cluster.pg_outbox`) drained by the senders of several nodes."""

    @property
    def path(self) -> Path | str:
        """The SQLite file, or where PostgreSQL is (no password)."""

    @property
    def lease_s(self) -> float | None:
        """How long a row handed out by `head` is kept from other senders (None: there are
        no others)."""

    def pending_counts(self) -> dict[str, int]:
        """Pending rows per channel."""

    def pending(self, channel: str) -> int: ...
    def known_ids(self, notice_ids: Collection[str]) -> set[str]: ...

    def enqueue(self, notice: Notice, channels: list[str], max_pending: int) -> Queued | None:
        """In one transaction: remember `notice` and add a row for each channel with fewer
        than `max_pending` pending; None when the notice was remembered already."""

    def severity_before(self, anomaly_id: str) -> Severity | None: ...
    def record_severity(self, anomaly_id: str, severity: Severity, at: datetime) -> None: ...

    def head(self, channel: str) -> Pending | None:
        """The channel's oldest pending row, for this sender to deliver (None: none, or
        another sender holds the channel)."""

    def done(self, row: Pending, state: str, at: datetime, error: str | None) -> int | None:
        """Mark a pending row delivered or given up; the channel's pending rows now, or None
        when it was not pending any more."""

    def failed(self, row: Pending, error: str) -> None: ...
    def rows(self, channel: str) -> list[tuple[str, str, int]]: ...

    def give_up_unconfigured(self, channels: Collection[str], at: datetime) -> dict[str, int]:
        """Give up the pending rows of channels not among `channels`; {channel: rows}."""

    def prune(self, now: datetime, keep_done: timedelta, max_pending: int) -> int: ...
    def close(self) -> None: ...


class SqliteOutbox:
    """The outbox's SQLite file, read and written by this process alone; the pending rows per
    channel are counted in memory."""

    lease_s = None  # one sender: nothing to keep from others

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written
        by a newer release."""
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            migrate(self._db, path, "notification outbox", MIGRATIONS)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            rows = self._db.execute(
                "SELECT channel, count(*) FROM delivery WHERE state = 'pending' GROUP BY channel"
            )
            self._pending: dict[str, int] = {channel: int(count) for channel, count in rows}
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def pending_counts(self) -> dict[str, int]:
        return dict(self._pending)

    def pending(self, channel: str) -> int:
        return self._pending.get(channel, 0)

    def known_ids(self, notice_ids: Collection[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT id FROM notice WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(notice_ids)),),
        )
        return {r[0] for r in rows}

    def enqueue(self, notice: Notice, channels: list[str], max_pending: int) -> Queued | None:
        added: list[str] = []
        dropped: list[str] = []
        now = _utc(notice.at)
        with immediate(self._db):
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO notice (id, event, created_at, body) VALUES (?, ?, ?, ?)",
                (notice.id, notice.event, now, json.dumps(notice.to_json(), ensure_ascii=False)),
            )
            if cursor.rowcount == 0:
                return None  # committed on the way out
            for channel in channels:
                if self._pending.get(channel, 0) >= max_pending:
                    dropped.append(channel)
                    continue
                self._db.execute(
                    "INSERT INTO delivery (notice_id, channel, state, created_at)"
                    " VALUES (?, ?, 'pending', ?)",
                    (notice.id, channel, now),
                )
                added.append(channel)
        for channel in added:
            self._pending[channel] = self._pending.get(channel, 0) + 1
        return [(channel, self._pending[channel]) for channel in added], dropped

    def severity_before(self, anomaly_id: str) -> Severity | None:
        row = self._db.execute(
            "SELECT severity FROM anomaly_severity WHERE anomaly_id = ?", (anomaly_id,)
        ).fetchone()
        return row[0] if row else None

    def record_severity(self, anomaly_id: str, severity: Severity, at: datetime) -> None:
        self._db.execute(
            "INSERT INTO anomaly_severity (anomaly_id, severity, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT (anomaly_id) DO UPDATE SET severity = excluded.severity,"
            " seen_at = excluded.seen_at",
            (anomaly_id, severity, _utc(at)),
        )

    def head(self, channel: str) -> Pending | None:
        row = self._db.execute(
            "SELECT d.seq, n.body, d.created_at, d.attempts FROM delivery d"
            " JOIN notice n ON n.id = d.notice_id"
            " WHERE d.channel = ? AND d.state = 'pending' ORDER BY d.seq LIMIT 1",
            (channel,),
        ).fetchone()
        if row is None:
            return None
        notice = Notice.from_json(json.loads(row[1]))
        return Pending(row[0], channel, notice, datetime.fromisoformat(row[2]), int(row[3]))

    def done(self, row: Pending, state: str, at: datetime, error: str | None) -> int | None:
        cursor = self._db.execute(
            "UPDATE delivery SET state = ?, done_at = ?, last_error = coalesce(?, last_error),"
            " attempts = attempts + 1 WHERE seq = ? AND state = 'pending'",
            (state, _utc(at), error, row.seq),
        )
        if not cursor.rowcount:
            return None
        self._pending[row.channel] = self._pending.get(row.channel, 0) - 1
        return self._pending[row.channel]

    def failed(self, row: Pending, error: str) -> None:
        self._db.execute(
            "UPDATE delivery SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
            (error, row.seq),
        )

    def rows(self, channel: str) -> list[tuple[str, str, int]]:
        return [
            (r[0], r[1], int(r[2]))
            for r in self._db.execute(
                "SELECT notice_id, state, attempts FROM delivery WHERE channel = ? ORDER BY seq",
                (channel,),
            )
        ]

    def give_up_unconfigured(self, channels: Collection[str], at: datetime) -> dict[str, int]:
        stale = [c for c, n in self._pending.items() if c not in channels and n > 0]
        if not stale:
            return {}
        given: dict[str, int] = {}
        with immediate(self._db):
            for channel in stale:
                given[channel] = self._db.execute(
                    "UPDATE delivery SET state = 'given_up', done_at = ?, last_error = ?"
                    " WHERE channel = ? AND state = 'pending'",
                    (_utc(at), UNCONFIGURED, channel),
                ).rowcount
        for channel in given:
            del self._pending[channel]
        return given

    def prune(self, now: datetime, keep_done: timedelta, max_pending: int) -> int:
        deleted = 0
        with immediate(self._db):
            deleted += self._db.execute(
                "DELETE FROM delivery WHERE state != 'pending' AND done_at < ?",
                (_utc(now - keep_done),),
            ).rowcount
            channels = [r[0] for r in self._db.execute("SELECT DISTINCT channel FROM delivery")]
            for channel in channels:  # at most max_pending done rows per channel
                deleted += self._db.execute(
                    "DELETE FROM delivery WHERE channel = ? AND state != 'pending' AND seq <"
                    " (SELECT seq FROM delivery WHERE channel = ? AND state != 'pending'"
                    " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (channel, channel, max_pending - 1),
                ).rowcount
            forget = "NOT EXISTS (SELECT 1 FROM delivery d WHERE d.notice_id = notice.id)"
            deleted += self._db.execute(
                f"DELETE FROM notice WHERE created_at < ? AND {forget}", (_utc(now - REMEMBER),)
            ).rowcount
            deleted += self._db.execute(
                f"DELETE FROM notice WHERE {forget} AND created_at <"
                " (SELECT created_at FROM notice ORDER BY created_at DESC LIMIT 1 OFFSET ?)",
                (MAX_REMEMBERED - 1,),
            ).rowcount
            deleted += self._db.execute(
                "DELETE FROM anomaly_severity WHERE seen_at < ?", (_utc(now - REMEMBER),)
            ).rowcount
        return deleted


UNCONFIGURED = "channel no longer configured"


class Outbox:
    """The outbox over its backend, with its bounds, metrics and log lines (see the module's
    docstring)."""

    def __init__(
        self,
        where: Path | str | OutboxBackend,
        *,
        max_pending: int,
        log_interval_s: float = 60.0,
    ) -> None:
        """Open the outbox: a SQLite file's path (created, its schema migrated; `StateError`
        when written by a newer release), or a backend such as PostgreSQL's."""
        backend = SqliteOutbox(where) if isinstance(where, Path | str) else where
        self._backend: OutboxBackend = backend
        self.path = backend.path
        self.max_pending = max_pending
        self._limiter = LogLimiter(log_interval_s)
        try:
            self._show_pending()
        except BaseException:
            backend.close()
            raise

    @property
    def lease_s(self) -> float | None:
        """How long a row in hand is kept from the senders of other nodes (None: one node)."""
        return self._backend.lease_s

    def close(self) -> None:
        self._backend.close()

    # -- writing (the anomaly store's listener, the escalation) -----------------------------

    def known(self, notice_id: str) -> bool:
        return notice_id in self._backend.known_ids([notice_id])

    def known_ids(self, notice_ids: Collection[str]) -> set[str]:
        """Those of `notice_ids` raised before, in one query."""
        return self._backend.known_ids(notice_ids)

    def enqueue(self, notice: Notice, channels: Iterable[str]) -> Enqueued:
        """Remember `notice` and add a pending row for each channel with room."""
        queued = self._backend.enqueue(notice, list(dict.fromkeys(channels)), self.max_pending)
        if queued is None:
            return Enqueued([], [], known=True)
        added, dropped = queued
        for channel, count in added:
            metrics.NOTIFY_PENDING.labels(channel).set(count)
        for channel in dropped:
            metrics.NOTIFY_DROPPED.labels(channel).inc()
            suppressed = self._limiter.allow(("full", channel), time.monotonic())
            if suppressed >= 0:
                log.warning(
                    "notification outbox full for a channel; notice dropped for it",
                    channel=channel,
                    max_pending=self.max_pending,
                    notice=notice.id,
                    suppressed_since_last=suppressed,
                )
        return Enqueued([channel for channel, _ in added], dropped)

    def severity_before(self, anomaly_id: str) -> Severity | None:
        """The severity recorded for the anomaly (None: never)."""
        return self._backend.severity_before(anomaly_id)

    def record_severity(self, anomaly_id: str, severity: Severity, at: datetime) -> None:
        """Remember the anomaly's severity. The listener calls it only once the event's notices
        are queued: an escalation that could not be queued is found again with the next event
        (and, queued by then, adds nothing: notices are once by id)."""
        self._backend.record_severity(anomaly_id, severity, at)

    # -- delivering (the sender) ------------------------------------------------------------

    def head(self, channel: str) -> Pending | None:
        """The channel's oldest pending row (rows go out in the order they were added); None
        also while the sender of another node holds the channel (PostgreSQL)."""
        return self._backend.head(channel)

    def delivered(self, row: Pending, at: datetime) -> None:
        self._done(row, "delivered", at, None)

    def given_up(self, row: Pending, at: datetime, error: str) -> None:
        self._done(row, "given_up", at, error)

    def failed(self, row: Pending, error: str) -> None:
        """One more failed attempt (the row stays pending)."""
        self._backend.failed(row, error[:500])

    def _done(self, row: Pending, state: str, at: datetime, error: str | None) -> None:
        count = self._backend.done(row, state, at, error)
        if count is not None:
            metrics.NOTIFY_PENDING.labels(row.channel).set(count)

    # -- reading and housekeeping -----------------------------------------------------------

    def pending(self, channel: str) -> int:
        return self._backend.pending(channel)

    def rows(self, channel: str) -> list[tuple[str, str, int]]:
        """(notice id, state, attempts) of a channel's rows, oldest first."""
        return self._backend.rows(channel)

    def give_up_unconfigured(self, channels: Collection[str], at: datetime) -> dict[str, int]:
        """Give up the pending rows of channels not among `channels` (removed or renamed in
        the configuration: nothing would ever send them); {channel: rows given up}. Counted in
        `notify_given_up_total{channel}`, logged once; pruned later like any done row."""
        given = self._backend.give_up_unconfigured(channels, at)
        if not given:
            return {}
        for channel, count in given.items():
            metrics.NOTIFY_PENDING.labels(channel).set(0)
            metrics.NOTIFY_GIVEN_UP.labels(channel).inc(count)
        log.warning(
            "pending notices of channels no longer configured given up",
            channels=given,
            configured=sorted(channels),
        )
        return given

    def prune(self, now: datetime, keep_done: timedelta) -> int:
        """Delete what the bounds of the module's docstring let go; rows deleted. The pending
        gauges are set again from the backend (other nodes change them on PostgreSQL)."""
        deleted = self._backend.prune(now, keep_done, self.max_pending)
        self._show_pending()
        return deleted

    def _show_pending(self) -> None:
        for channel, count in self._backend.pending_counts().items():
            metrics.NOTIFY_PENDING.labels(channel).set(count)


def _utc(moment: datetime) -> str:
    """Sortable UTC text for the indexed columns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
