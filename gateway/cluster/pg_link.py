"""One PostgreSQL connection shared by a store's callers, and the LISTEN side of NOTIFY.

The stores are called from the event loop and from the API's worker threads: `PgLink` hands
its connection to one caller at a time and opens it again when PostgreSQL dropped it (the
call that found it broken fails; the next one reconnects). `Notifications` listens on its
own connection in a thread and calls back on every notification, and once after each
(re)connection, since what was sent while it was not listening is lost.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

log = structlog.get_logger(__name__)


def describe(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unreadable DSN)"
    host, port, db = parts.get("host", ""), parts.get("port", ""), parts.get("dbname", "")
    return f"postgresql://{host}{':' if port else ''}{port}/{db}"


class PgLink:
    """A connection in autocommit mode (transactions are explicit), one caller at a time."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._lock = threading.RLock()
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.dsn, autocommit=True, application_name="pollution-gateway")

    @contextlib.contextmanager
    def session(self) -> Iterator[psycopg.Connection[TupleRow]]:
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class Notifications:
    """LISTEN on `channel` in a daemon thread; `changed()` on each notification (from that
    thread) and after each (re)connection."""

    def __init__(self, dsn: str, channel: str, changed: Callable[[], None]) -> None:
        self._dsn = dsn
        self._channel = channel
        self._changed = changed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._changed()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._changed()
            except psycopg.Error as exc:
                log.warning(
                    "PostgreSQL notifications lost; listening again",
                    channel=self._channel,
                    where=describe(self._dsn),
                    error=str(exc),
                )
                self._stop.wait(1.0)
