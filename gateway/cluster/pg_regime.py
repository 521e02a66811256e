"""The control regime's backend in PostgreSQL, shared by every node of a cluster.

Alerts and orders are JSON bodies by id, as in the SQLite file (`gateway.regime.store`).
Each write commits with a NOTIFY on `gateway_regime`; every node's `Regime` then reads the
records again, so an order issued through one node is in force for the rules of all. A
withdrawal updates the body only if no other node changed it meanwhile (the row is locked
and compared), so an order is withdrawn once whichever nodes are asked. The audit callback
runs inside the write's transaction, on its connection for a `PgAudit` of the same DSN
(`pg_audit.joined`): the change and its audit entry commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import LiteralString

from ..regime.store import Audit, Table
from .pg_audit import joined
from .pg_schema import PgBackend, PgMigration

CHANNEL = "gateway_regime"

# the bodies of version 1 are those of the SQLite file's version 2 (issuer, withdrawal)
MIGRATIONS: list[PgMigration] = [
    (
        1,
        (
            "CREATE TABLE regime_alert (id text PRIMARY KEY, body text NOT NULL)",
            "CREATE TABLE regime_order (id text PRIMARY KEY, body text NOT NULL)",
        ),
    )
]

_TABLES: dict[Table, LiteralString] = {"alert": "regime_alert", "control_order": "regime_order"}


class PgRegime(PgBackend):
    """`RegimeBackend` on PostgreSQL; the schema is created or migrated on opening."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, "regime store", MIGRATIONS, CHANNEL)

    def load(self, table: Table) -> list[tuple[str, str]]:
        with self._link.session() as conn:
            rows = conn.execute("SELECT id, body FROM " + _TABLES[table]).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def body(self, table: Table, record_id: str) -> str | None:
        with self._link.session() as conn:
            row = conn.execute(
                "SELECT body FROM " + _TABLES[table] + " WHERE id = %s", (record_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def insert(self, table: Table, record_id: str, body: str, audit: Audit | None) -> None:
        with self._link.session() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO " + _TABLES[table] + " (id, body) VALUES (%s, %s)", (record_id, body)
            )
            if audit is not None:
                with joined(self._dsn, conn):  # an entry of PgAudit commits with it
                    audit()
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, record_id))

    def update(
        self,
        table: Table,
        record_id: str,
        body: str,
        unchanged: Callable[[str], bool],
        audit: Audit | None,
    ) -> bool:
        name = _TABLES[table]
        with self._link.session() as conn, conn.transaction():
            row = conn.execute(
                "SELECT body FROM " + name + " WHERE id = %s FOR UPDATE", (record_id,)
            ).fetchone()
            if row is None or not unchanged(str(row[0])):
                return False
            conn.execute("UPDATE " + name + " SET body = %s WHERE id = %s", (body, record_id))
            if audit is not None:
                with joined(self._dsn, conn):  # an entry of PgAudit commits with it
                    audit()
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, record_id))
        return True

    def delete(self, table: Table, record_id: str) -> None:
        with self._link.session() as conn, conn.transaction():
            conn.execute("DELETE FROM " + _TABLES[table] + " WHERE id = %s", (record_id,))
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, record_id))
