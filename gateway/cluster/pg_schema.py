"""Versioned PostgreSQL schemas: one row per component in `gateway_schema`.

At start each store brings its component to its last version: the steps above the recorded
version run in one transaction with the new version, under an advisory lock so nodes that
start together migrate once. A version above the last step was written by a newer release
and is refused (`StateError`), as with the SQLite files. `PgBackend` is what both stores
share: the link, the migration on opening, the notifications.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import LiteralString

from ..migrations import newer_than_code
from .pg_link import Notifications, PgLink, describe

PgMigration = tuple[int, Sequence[LiteralString]]  # (version, statements)

_LOCK = 0x6761_7465_7761_7900  # pg_advisory_xact_lock key of schema changes ("gateway")


def migrate(link: PgLink, component: str, migrations: Sequence[PgMigration]) -> int:
    """Bring `component`'s tables to the last version; the version found before."""
    latest = migrations[-1][0]
    with link.session() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS gateway_schema"
            " (component text PRIMARY KEY, version integer NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM gateway_schema WHERE component = %s", (component,)
        ).fetchone()
        found = int(row[0]) if row else 0
        if found > latest:
            raise newer_than_code(describe(link.dsn), component, found, latest)
        for version, statements in migrations:
            if version > found:
                for statement in statements:
                    conn.execute(statement)
        conn.execute(
            "INSERT INTO gateway_schema (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, latest),
        )
    return found


class PgBackend:
    """What both PostgreSQL stores share: the link to `dsn`, the schema of `component` brought
    to its last version on opening, and the notifications of `channel` once watched."""

    def __init__(
        self, dsn: str, component: str, migrations: Sequence[PgMigration], channel: str
    ) -> None:
        self.path = describe(dsn)
        self._dsn = dsn
        self._channel = channel
        self._link = PgLink(dsn)
        self._notifications: Notifications | None = None
        try:
            migrate(self._link, component, migrations)
        except BaseException:
            self._link.close()
            raise

    def close(self) -> None:
        if self._notifications is not None:
            self._notifications.close()
        self._link.close()

    def watch(self, changed: Callable[[], None]) -> None:
        self._notifications = Notifications(self._dsn, self._channel, changed)
