"""The anomaly store's backend in PostgreSQL, shared by every node of a cluster.

The same semantics as the SQLite file (`gateway.anomalies.store`): the current state of each
anomaly and the ordered stream of its changes. An event's `seq` comes from an identity
column and is inserted in the transaction that changes the anomaly. Those transactions take
one advisory lock in turn, so events become visible in `seq` order: a reader that saw seq
`n` never later finds an event below `n` (a sequence alone would let a slower transaction
commit a smaller seq after a larger one). Each commit NOTIFYs `gateway_anomaly_events`, which
wakes the SSE streams of every API node.
"""

from __future__ import annotations

import json
from typing import LiteralString

from ..anomalies.model import Anomaly, EventKind
from ..anomalies.store import Decide, EventRow, QueryFilter
from .pg_schema import PgBackend, PgMigration

CHANNEL = "gateway_anomaly_events"
_EVENT_LOCK = 0x6761_7465_7761_7901  # pg_advisory_xact_lock key of event writes

MIGRATIONS: list[PgMigration] = [
    (
        1,
        (
            "CREATE TABLE anomaly (id text PRIMARY KEY, type text NOT NULL,"
            " family text NOT NULL, enterprise text NOT NULL, state text NOT NULL,"
            " started_at timestamptz NOT NULL, ended_at timestamptz, body text NOT NULL)",
            "CREATE INDEX anomaly_enterprise ON anomaly (enterprise, started_at)",
            "CREATE INDEX anomaly_state ON anomaly (state, started_at)",
            "CREATE TABLE anomaly_event (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " anomaly_id text NOT NULL, kind text NOT NULL, body text NOT NULL)",
            "CREATE INDEX anomaly_event_of ON anomaly_event (anomaly_id, seq)",
        ),
    )
]

_UPSERT = (
    "INSERT INTO anomaly (id, type, family, enterprise, state, started_at, ended_at, body)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
    " state = excluded.state, ended_at = excluded.ended_at, body = excluded.body"
)
_COLUMNS: dict[str, LiteralString] = {
    "enterprise": "enterprise",
    "type": "type",
    "family": "family",
    "state": "state",
}


class PgAnomalies(PgBackend):
    """`AnomalyBackend` on PostgreSQL; the schema is created or migrated on opening."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, "anomaly store", MIGRATIONS, CHANNEL)

    def write(self, anomaly_id: str, decide: Decide) -> tuple[int, EventKind, Anomaly] | None:
        with self._link.session() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_EVENT_LOCK,))
            row = conn.execute("SELECT body FROM anomaly WHERE id = %s", (anomaly_id,)).fetchone()
            decided = decide(None if row is None else str(row[0]))
            if decided is None:
                return None
            kind, anomaly = decided
            body = json.dumps(anomaly.stored_json(), ensure_ascii=False)
            conn.execute(
                _UPSERT,
                (
                    anomaly.id,
                    anomaly.type,
                    anomaly.family,
                    anomaly.enterprise,
                    anomaly.state,
                    anomaly.started_at,
                    anomaly.ended_at,
                    body,
                ),
            )
            inserted = conn.execute(
                "INSERT INTO anomaly_event (anomaly_id, kind, body) VALUES (%s, %s, %s)"
                " RETURNING seq",
                (anomaly.id, kind, body),
            ).fetchone()
            assert inserted is not None
            seq = int(inserted[0])
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))
        return seq, kind, anomaly

    def body(self, anomaly_id: str) -> str | None:
        with self._link.session() as conn:
            row = conn.execute("SELECT body FROM anomaly WHERE id = %s", (anomaly_id,)).fetchone()
        return None if row is None else str(row[0])

    def open_bodies(self) -> list[str]:
        with self._link.session() as conn:
            rows = conn.execute("SELECT body FROM anomaly WHERE state = 'open'").fetchall()
        return [str(r[0]) for r in rows]

    def query(self, where: QueryFilter, limit: int, offset: int) -> tuple[list[str], int]:
        terms: list[LiteralString] = []
        args: list[object] = []
        if where.enterprises is not None:
            terms.append("enterprise = ANY(%s)")
            args.append(where.enterprises)
        for column, value in where.columns.items():
            terms.append(_COLUMNS[column] + " = %s")
            args.append(value)
        if where.since is not None:
            terms.append("(ended_at IS NULL OR ended_at >= %s)")
            args.append(where.since)
        if where.until is not None:
            terms.append("started_at <= %s")
            args.append(where.until)
        clause: LiteralString = (" WHERE " + " AND ".join(terms)) if terms else ""
        with self._link.session() as conn:
            counted = conn.execute("SELECT count(*) FROM anomaly" + clause, args).fetchone()
            rows = conn.execute(
                "SELECT body FROM anomaly" + clause + " ORDER BY started_at DESC, id"
                " LIMIT %s OFFSET %s",
                [*args, limit, offset],
            ).fetchall()
        total = int(counted[0]) if counted else 0
        return [str(r[0]) for r in rows], total

    def events_after(self, seq: int, limit: int) -> list[EventRow]:
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT seq, kind, body FROM anomaly_event WHERE seq > %s ORDER BY seq LIMIT %s",
                (seq, limit),
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def events_of(self, anomaly_id: str) -> list[EventRow]:
        with self._link.session() as conn:
            rows = conn.execute(
                "SELECT seq, kind, body FROM anomaly_event WHERE anomaly_id = %s ORDER BY seq",
                (anomaly_id,),
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def last_seq(self) -> int:
        with self._link.session() as conn:
            row = conn.execute("SELECT max(seq) FROM anomaly_event").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])
