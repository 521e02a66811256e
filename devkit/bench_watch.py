"""What the cluster bench watches from outside the node: the shared anomaly store's
notifications (when each anomaly was heard of) and the rule partitions' leases."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import psycopg
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

CHANNEL = "gateway_anomaly_events"  # gateway/cluster/pg_anomalies.py

AnomalyKey = tuple[str, str, datetime]  # type, enterprise, start


class AnomalyWatch:
    """LISTENs to the anomaly store's NOTIFY in a thread of its own: `opened` maps (type,
    enterprise, start) of each anomaly opened to the perf_counter at which its notification
    arrived."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.opened: dict[AnomalyKey, float] = {}
        self.events = 0
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anomaly-watch", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._listening.wait(30):
            raise RuntimeError(f"could not LISTEN on {self.dsn}: {self.error!r}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                while not self._stop.is_set():
                    heard = [
                        (time.perf_counter(), int(n.payload))
                        for n in conn.notifies(timeout=0.1, stop_after=500)
                    ]
                    if heard:
                        self._note(conn, heard)
        except BaseException as exc:  # reported by start() or the caller
            self.error = exc

    def _note(
        self, conn: psycopg.Connection[tuple[object, ...]], heard: list[tuple[float, int]]
    ) -> None:
        at = {seq: t for t, seq in heard}
        rows = conn.execute(
            "SELECT seq, kind, body FROM anomaly_event WHERE seq = ANY(%s)", (list(at),)
        ).fetchall()
        for seq, kind, body in rows:
            self.events += 1
            if kind != "opened":
                continue
            anomaly = json.loads(str(body))
            key = (
                anomaly["type"],
                anomaly["enterprise"],
                datetime.fromisoformat(anomaly["started_at"]),
            )
            self.opened.setdefault(key, at[int(str(seq))])


async def owners(kv: KeyValue) -> dict[int, str]:
    """partition -> the worker id holding its lease."""
    try:
        keys = await kv.keys()
    except NoKeysError:
        return {}
    out = {}
    for key in keys:
        if key.startswith("p.") and key[2:].isdigit():
            try:
                entry = await kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):  # expired or deleted since the listing
                continue
            out[int(key[2:])] = (entry.value or b"").decode()
    return out
