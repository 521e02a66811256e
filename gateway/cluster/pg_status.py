"""Rule state for the API nodes: each worker's status snapshots in PostgreSQL.

With rule workers the state the API's status answers come from (device contact, meters'
verdicts, completeness) lives in the worker that owns an enterprise's partition. Every status
interval, and once the replay of a partition it took is done, a worker writes
`RuleStatus.enterprise_status` of each enterprise of its partitions to `rule_status` (one row
per enterprise: the body as JSON, when, which worker). `PgStatus` answers the API from those
rows. A row older than `STALE_INTERVALS` status intervals (no worker has written it since: the
partition's worker is gone and none has finished taking it over) is not shown as current: its
devices, lines and facilities are unknown (`online: null`, `running: null`), as for an
enterprise no worker wrote yet, with `stale: true` and the row's `as_of`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from ..api.status import RegistryStatus
from ..registry import Registry
from .pg_schema import PgBackend, PgMigration

CHANNEL = "gateway_rule_status"  # not notified: the API reads at each request
STALE_INTERVALS = 3

MIGRATIONS: list[PgMigration] = [
    (
        1,
        (
            "CREATE TABLE rule_status (enterprise text PRIMARY KEY, body jsonb NOT NULL,"
            " at timestamptz NOT NULL, node text NOT NULL)",
        ),
    )
]

Snapshot = tuple[dict[str, Any], datetime]  # (body, written at)


class StatusSnapshots(PgBackend):
    """The `rule_status` table; the schema is created or migrated on opening."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, "rule status", MIGRATIONS, CHANNEL)

    def write(self, bodies: Sequence[tuple[str, dict[str, Any]]], at: datetime, node: str) -> None:
        """Each (enterprise, body) in one transaction; a row written later by another worker
        (the partition moved meanwhile) is kept."""
        if not bodies:
            return
        with self._link.session() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rule_status (enterprise, body, at, node) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (enterprise) DO UPDATE SET body = excluded.body,"
                " at = excluded.at, node = excluded.node WHERE rule_status.at <= excluded.at",
                [(ent, Jsonb(body), at, node) for ent, body in bodies],
            )

    def read(self, enterprise: str) -> Snapshot | None:
        with self._link.session() as conn:
            row = conn.execute(
                "SELECT body, at FROM rule_status WHERE enterprise = %s", (enterprise,)
            ).fetchone()
        return None if row is None else (dict(row[0]), row[1])

    def read_all(self) -> dict[str, Snapshot]:
        with self._link.session() as conn:
            rows = conn.execute("SELECT enterprise, body, at FROM rule_status").fetchall()
        return {str(r[0]): (dict(r[1]), r[2]) for r in rows}

    def rows(self) -> list[tuple[str, str, datetime]]:
        """(enterprise, node, at) of every row."""
        with self._link.session() as conn:
            rows = conn.execute("SELECT enterprise, node, at FROM rule_status").fetchall()
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]


class PgStatus:
    """`StatusProvider` of an API node from the workers' snapshots.

    A fresh snapshot (written within `STALE_INTERVALS * status_interval_s`) is answered as the
    worker wrote it, with `as_of` and `stale: false`; an old one, or none, as the registry's
    devices with their status unknown, `stale: true` (and `last_seen` kept from the old one).
    """

    def __init__(
        self,
        dsn: str,
        registry: Callable[[], Registry],
        *,
        status_interval_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.snapshots = StatusSnapshots(dsn)
        self.registry = registry
        self.stale_after_s = STALE_INTERVALS * status_interval_s
        self.clock = clock
        self._unknown = RegistryStatus(registry)

    def close(self) -> None:
        self.snapshots.close()

    def _fresh(self, at: datetime) -> bool:
        return (self.clock() - at).total_seconds() <= self.stale_after_s

    def _answer(self, enterprise_id: str, snapshot: Snapshot | None) -> dict[str, Any] | None:
        if snapshot is not None and self._fresh(snapshot[1]):
            body, at = snapshot
            return {**body, "as_of": at.isoformat(), "stale": False}
        unknown = self._unknown.enterprise_status(enterprise_id)
        if unknown is None:
            return None
        if snapshot is not None:
            seen = {(d["kind"], d["id"]): d.get("last_seen") for d in snapshot[0]["devices"]}
            for device in unknown["devices"]:
                device["last_seen"] = seen.get((device["kind"], device["id"]))
        as_of = snapshot[1].isoformat() if snapshot is not None else None
        return {**unknown, "as_of": as_of, "stale": True}

    def enterprise_status(self, enterprise_id: str) -> dict[str, Any] | None:
        if self.registry().enterprise(enterprise_id) is None:
            return None
        return self._answer(enterprise_id, self.snapshots.read(enterprise_id))

    def devices(self, state: str | None) -> list[dict[str, Any]]:
        snapshots = self.snapshots.read_all()
        out: list[dict[str, Any]] = []
        for ent in self.registry().data.enterprises:
            status = self._answer(ent.id, snapshots.get(ent.id))
            if status is not None:
                out += status["devices"]
        if state is None:
            return out
        wanted = {"online": True, "offline": False, "unknown": None}
        return [d for d in out if d["online"] is wanted.get(state, object())]
