"""The notification outbox's backend in PostgreSQL, drained by the senders of every node.

The same notices, rows, bounds and pruning as the SQLite file (`gateway.notify.outbox`), with
what several senders need:

- **Claims.** `head` hands a channel's oldest pending row to one sender: it locks the row
  (``FOR UPDATE SKIP LOCKED``: a sender never waits for another's claim, nor takes a later
  row instead) and writes `claimed_by` (this outbox's id) and `claimed_at` (the database's
  clock). Another sender gets nothing for that channel while a claim younger than `lease_s`
  is on any of its pending rows; a failed attempt renews the claim, so the channel stays with
  the sender that retries it, in order. A sender killed mid-send (no delivered, no failed)
  holds its row until the lease runs out; then the next sender that looks takes it and sends
  it again: delivery is at least once, and a notice is sent twice only when a sender died (or
  was cut off from the database) after the receiver took it and before the row was marked.
  `close` lets go of this outbox's claims, so a clean stop leaves nothing to wait for.
- **The bound.** `notify_pending` counts each channel's pending rows; an enqueue raises a
  channel's count only while it is below `max_pending` (one statement, under the row's lock),
  and marking a row done lowers it in the same transaction. So the bound holds across nodes:
  a notice for a full channel is dropped for it, as with the file.
- Rows are claimed in `seq` order; two enqueues committing out of `seq` order on two nodes
  can let a later row go first.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import cast

import psycopg
import structlog
from psycopg.rows import TupleRow

from ..anomalies.types import Severity
from ..notify.notices import Notice
from ..notify.outbox import MAX_REMEMBERED, REMEMBER, UNCONFIGURED, Pending, Queued
from .pg_schema import PgBackend, PgMigration

log = structlog.get_logger("gateway.notify")

CHANNEL = "gateway_notify"  # never notified: senders look every few seconds
LEASE_S = 60.0

MIGRATIONS: list[PgMigration] = [
    (
        1,
        (
            "CREATE TABLE notify_notice (id text PRIMARY KEY, event text NOT NULL,"
            " created_at timestamptz NOT NULL, body text NOT NULL)",
            "CREATE INDEX notify_notice_created ON notify_notice (created_at)",
            "CREATE TABLE notify_delivery (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " notice_id text NOT NULL REFERENCES notify_notice (id), channel text NOT NULL,"
            " state text NOT NULL CHECK (state IN ('pending', 'delivered', 'given_up')),"
            " created_at timestamptz NOT NULL, attempts integer NOT NULL DEFAULT 0,"
            " last_error text, done_at timestamptz, claimed_by text, claimed_at timestamptz,"
            " UNIQUE (notice_id, channel))",
            "CREATE INDEX notify_delivery_pending ON notify_delivery (channel, state, seq)",
            "CREATE INDEX notify_delivery_notice ON notify_delivery (notice_id)",
            "CREATE INDEX notify_delivery_claimed ON notify_delivery (channel)"
            " WHERE state = 'pending' AND claimed_by IS NOT NULL",
            "CREATE TABLE notify_pending (channel text PRIMARY KEY,"
            " pending integer NOT NULL CHECK (pending >= 0))",
            "CREATE TABLE notify_severity (anomaly_id text PRIMARY KEY, severity text NOT NULL,"
            " seen_at timestamptz NOT NULL)",
            "CREATE INDEX notify_severity_seen ON notify_severity (seen_at)",
        ),
    )
]

# the channel's oldest pending row, unless another sender's live claim is on the channel;
# claimed for this sender (the claim renewed when it is this sender's already)
_CLAIM = """
WITH head AS (
    SELECT d.seq FROM notify_delivery d
    WHERE d.seq = (SELECT min(seq) FROM notify_delivery
                   WHERE channel = %(channel)s AND state = 'pending')
      AND d.state = 'pending'
      AND (d.claimed_by IS NULL OR d.claimed_by = %(me)s
           OR d.claimed_at < clock_timestamp() - %(lease)s * interval '1 second')
      AND NOT EXISTS (
          SELECT 1 FROM notify_delivery o
          WHERE o.channel = %(channel)s AND o.state = 'pending' AND o.seq <> d.seq
            AND o.claimed_by IS NOT NULL AND o.claimed_by <> %(me)s
            AND o.claimed_at >= clock_timestamp() - %(lease)s * interval '1 second')
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE notify_delivery d SET claimed_by = %(me)s, claimed_at = clock_timestamp()
FROM head WHERE d.seq = head.seq
RETURNING d.seq, d.created_at, d.attempts,
    (SELECT n.body FROM notify_notice n WHERE n.id = d.notice_id)
"""

_RAISE = (
    "INSERT INTO notify_pending (channel, pending) VALUES (%s, 1) ON CONFLICT (channel)"
    " DO UPDATE SET pending = notify_pending.pending + 1 WHERE notify_pending.pending < %s"
    " RETURNING pending"
)
_LOWER = (
    "UPDATE notify_pending SET pending = greatest(pending - %s, 0) WHERE channel = %s"
    " RETURNING pending"
)
_FORGET = "NOT EXISTS (SELECT 1 FROM notify_delivery d WHERE d.notice_id = notify_notice.id)"

Connection = psycopg.Connection[TupleRow]


class PgOutbox(PgBackend):
    """`OutboxBackend` on PostgreSQL; the schema is created or migrated on opening. Each
    instance is one sender (`claimed_by`); `lease_s` must exceed the longest attempt."""

    def __init__(self, dsn: str, *, lease_s: float = LEASE_S) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        super().__init__(dsn, "notification outbox", MIGRATIONS, CHANNEL)
        self.lease_s = lease_s
        self.sender_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def close(self) -> None:
        """Let go of this sender's claims (another sender takes them at once), then close."""
        try:
            with self._link.session() as conn:
                conn.execute(
                    "UPDATE notify_delivery SET claimed_by = NULL, claimed_at = NULL"
                    " WHERE claimed_by = %s AND state = 'pending'",
                    (self.sender_id,),
                )
        except psycopg.Error as exc:  # they run out after the lease instead
            log.warning("outbox claims not released", where=self.path, error=str(exc))
        finally:
            super().close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._link.session() as conn, conn.transaction():
            yield conn

    # -- counts and notices -----------------------------------------------------------------

    def pending_counts(self) -> dict[str, int]:
        with self._link.session() as conn:
            rows = conn.execute("SELECT channel, pending FROM notify_pending").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def pending(self, channel: str) -> int:
        with self._link.session() as conn:
            row = conn.execute(
                "SELECT pending FROM notify_pending WHERE channel = %s", (channel,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def known_ids(self, notice_ids: Collection[str]) -> set[str]:
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT id FROM notify_notice WHERE id = ANY(%s)", (list(notice_ids),)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def enqueue(self, notice: Notice, channels: list[str], max_pending: int) -> Queued | None:
        room: dict[str, int] = {}
        with self._transaction() as conn:
            inserted = conn.execute(
                "INSERT INTO notify_notice (id, event, created_at, body) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    notice.id,
                    notice.event,
                    notice.at,
                    json.dumps(notice.to_json(), ensure_ascii=False),
                ),
            )
            if inserted.rowcount == 0:
                return None
            for channel in sorted(channels):  # counts locked in one order: no deadlock
                raised = conn.execute(_RAISE, (channel, max_pending)).fetchone()
                if raised is None:
                    continue  # full
                conn.execute(
                    "INSERT INTO notify_delivery (notice_id, channel, state, created_at)"
                    " VALUES (%s, %s, 'pending', %s)",
                    (notice.id, channel, notice.at),
                )
                room[channel] = int(raised[0])
        added = [(c, room[c]) for c in channels if c in room]
        return added, [c for c in channels if c not in room]

    def severity_before(self, anomaly_id: str) -> Severity | None:
        with self._link.session() as conn:
            row = conn.execute(
                "SELECT severity FROM notify_severity WHERE anomaly_id = %s", (anomaly_id,)
            ).fetchone()
        return None if row is None else cast(Severity, row[0])

    def record_severity(self, anomaly_id: str, severity: Severity, at: datetime) -> None:
        with self._link.session() as conn:
            conn.execute(
                "INSERT INTO notify_severity (anomaly_id, severity, seen_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (anomaly_id) DO UPDATE SET severity = excluded.severity,"
                " seen_at = excluded.seen_at",
                (anomaly_id, severity, at),
            )

    # -- delivering -------------------------------------------------------------------------

    def head(self, channel: str) -> Pending | None:
        with self._transaction() as conn:
            row = conn.execute(
                _CLAIM, {"channel": channel, "me": self.sender_id, "lease": self.lease_s}
            ).fetchone()
        if row is None:
            return None
        notice = Notice.from_json(json.loads(row[3]))
        return Pending(int(row[0]), channel, notice, row[1], int(row[2]))

    def done(self, row: Pending, state: str, at: datetime, error: str | None) -> int | None:
        with self._transaction() as conn:
            marked = conn.execute(
                "UPDATE notify_delivery SET state = %s, done_at = %s,"
                " last_error = coalesce(%s, last_error), attempts = attempts + 1"
                " WHERE seq = %s AND state = 'pending'",
                (state, at, error, row.seq),
            )
            if marked.rowcount == 0:
                return None  # another sender marked it (its claim had run out)
            lowered = conn.execute(_LOWER, (1, row.channel)).fetchone()
        return 0 if lowered is None else int(lowered[0])

    def failed(self, row: Pending, error: str) -> None:
        """One more attempt; the claim renewed if it is still this sender's."""
        with self._link.session() as conn:
            conn.execute(
                "UPDATE notify_delivery SET attempts = attempts + 1, last_error = %s,"
                " claimed_at = CASE WHEN claimed_by = %s THEN clock_timestamp()"
                " ELSE claimed_at END WHERE seq = %s AND state = 'pending'",
                (error, self.sender_id, row.seq),
            )

    # -- reading and housekeeping -----------------------------------------------------------

    def rows(self, channel: str) -> list[tuple[str, str, int]]:
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT notice_id, state, attempts FROM notify_delivery WHERE channel = %s"
                " ORDER BY seq",
                (channel,),
            ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def give_up_unconfigured(self, channels: Collection[str], at: datetime) -> dict[str, int]:
        with self._transaction() as conn:
            stale = conn.execute(
                "UPDATE notify_delivery SET state = 'given_up', done_at = %s, last_error = %s"
                " WHERE state = 'pending' AND NOT (channel = ANY(%s)) RETURNING channel",
                (at, UNCONFIGURED, list(channels)),
            ).fetchall()
            given = Counter(str(r[0]) for r in stale)
            for channel in sorted(given):
                conn.execute(_LOWER, (given[channel], channel))
        return dict(given)

    def prune(self, now: datetime, keep_done: timedelta, max_pending: int) -> int:
        deleted = 0
        with self._transaction() as conn:
            deleted += conn.execute(
                "DELETE FROM notify_delivery WHERE state <> 'pending' AND done_at < %s",
                (now - keep_done,),
            ).rowcount
            channels = conn.execute("SELECT DISTINCT channel FROM notify_delivery").fetchall()
            for (channel,) in channels:  # at most max_pending done rows per channel
                deleted += conn.execute(
                    "DELETE FROM notify_delivery WHERE channel = %s AND state <> 'pending'"
                    " AND seq < (SELECT seq FROM notify_delivery WHERE channel = %s"
                    " AND state <> 'pending' ORDER BY seq DESC LIMIT 1 OFFSET %s)",
                    (channel, channel, max_pending - 1),
                ).rowcount
            deleted += conn.execute(
                "DELETE FROM notify_notice WHERE created_at < %s AND " + _FORGET,
                (now - REMEMBER,),
            ).rowcount
            deleted += conn.execute(
                "DELETE FROM notify_notice WHERE " + _FORGET + " AND created_at <"
                " (SELECT created_at FROM notify_notice ORDER BY created_at DESC"
                " LIMIT 1 OFFSET %s)",
                (MAX_REMEMBERED - 1,),
            ).rowcount
            deleted += conn.execute(
                "DELETE FROM notify_severity WHERE seen_at < %s", (now - REMEMBER,)
            ).rowcount
        return deleted
