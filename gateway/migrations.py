"""Versioned on-disk state: SQLite schema migrations keyed by ``PRAGMA user_version``.

A store lists its migrations as ``(version, step)`` in ascending order, where a step is SQL
(one or more statements) or a function of the connection. At open, the steps above the file's
``user_version`` run in order inside one transaction, which also sets the new version, so a
file is either wholly migrated or left as it was. A file whose version is above the last step
was written by a newer release and is refused.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .errors import ConfigError

Step = str | Callable[[sqlite3.Connection], None]
Migration = tuple[int, Step]


class StateError(ConfigError):
    """On-disk state this release cannot open: written by a newer release, or damaged."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


def newer_than_code(path: Path | str, what: str, found: int, supported: int) -> StateError:
    """The error for state of format `found` when this release reads up to `supported`."""
    return StateError(
        f"{path}: {what} format version {found} is newer than this release reads"
        f" (up to {supported}); it was written by a newer pollution-gateway: run that"
        " release, or restore a backup taken with this one"
    )


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the body raises; for the stores'
    connections in autocommit mode (``isolation_level=None``)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    db: sqlite3.Connection, path: Path | str, what: str, migrations: Sequence[Migration]
) -> int:
    """Bring the database to the last version of `migrations`; the version it had before.

    `db` must be in autocommit mode (``isolation_level=None``). Raises `StateError` when the
    file is newer than the last migration.
    """
    versions = [v for v, _ in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migrations of {what} must have ascending versions from 1: {versions}")
    latest = versions[-1] if versions else 0
    found = user_version(db)
    if found > latest:
        raise newer_than_code(path, what, found, latest)
    if found == latest:
        return found
    with immediate(db):  # no other connection migrates or writes meanwhile
        found = user_version(db)
        if found > latest:
            raise newer_than_code(path, what, found, latest)
        for version, step in migrations:
            if version <= found:
                continue
            if isinstance(step, str):
                for statement in _statements(step):
                    db.execute(statement)
            else:
                step(db)
            db.execute(f"PRAGMA user_version = {int(version)}")
    return found


def _statements(sql: str) -> Iterator[str]:
    """The complete statements of `sql` (``executescript`` would commit the transaction)."""
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                yield buffer
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in a migration: {buffer!r}")


def open_store(
    path: Path | str, what: str, migrations: Sequence[Migration], synchronous: str | None
) -> sqlite3.Connection:
    """A store's SQLite file opened (or created) and migrated, in WAL mode with `synchronous`
    (None: SQLite's default); closed again and `StateError` when a newer release wrote it."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        migrate(db, path, what, migrations)
    except BaseException:
        db.close()
        raise
    db.execute("PRAGMA journal_mode=WAL")
    if synchronous is not None:
        db.execute(f"PRAGMA synchronous={synchronous}")
    return db
