"""What the reports read from the anomaly and case files, in a few batched queries on
read-only connections of their own, opened and closed in the thread that uses them (a report
is built off the event loop; the stores' own connections stay with it). WAL lets these reads
go on while the gateway writes: each query sees the files as of its start.

Reads the stores' tables as their modules define them (`gateway.anomalies.store`,
`gateway.cases.schema`): times in the indexed columns are UTC text that sorts as time."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..anomalies.model import Anomaly
from ..cases.model import Case, case_from_json


def _utc(moment: datetime) -> str:
    """The stores' column text of `moment`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ids(values: Collection[object]) -> str:
    return json.dumps(sorted({str(v) for v in values}))


@contextmanager
def read_only(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the SQLite file at `path` (never creates or writes it)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        yield db


def _anomalies(db: sqlite3.Connection, where: str, args: list[str]) -> list[Anomaly]:
    rows = db.execute(f"SELECT body FROM anomaly WHERE {where} ORDER BY started_at, id", args)
    return [Anomaly.from_json(json.loads(r[0])) for r in rows]


def _scope(enterprises: Collection[str] | None) -> tuple[str, list[str]]:
    if enterprises is None:
        return "", []
    return " AND enterprise IN (SELECT value FROM json_each(?))", [_ids(enterprises)]


def started_between(
    db: sqlite3.Connection, enterprises: Collection[str] | None, start: datetime, end: datetime
) -> list[Anomaly]:
    """The anomalies of `enterprises` (None: every one) that started in `[start, end)`."""
    scope, args = _scope(enterprises)
    return _anomalies(
        db, "started_at >= ? AND started_at < ?" + scope, [_utc(start), _utc(end), *args]
    )


def overlapping(
    db: sqlite3.Connection,
    enterprises: Collection[str] | None,
    start: datetime,
    end: datetime,
    family: str,
) -> list[Anomaly]:
    """The anomalies of `family` of `enterprises` that overlap `[start, end)` (an open one
    reaches to now)."""
    scope, args = _scope(enterprises)
    where = "family = ? AND started_at < ? AND (ended_at IS NULL OR ended_at >= ?)" + scope
    return _anomalies(db, where, [family, _utc(end), _utc(start), *args])


def types_of(db: sqlite3.Connection, anomaly_ids: Collection[str]) -> dict[str, str]:
    """Anomaly id -> its type, for the ids that are stored."""
    rows = db.execute(
        "SELECT id, type FROM anomaly WHERE id IN (SELECT value FROM json_each(?))",
        [_ids(anomaly_ids)],
    )
    return {str(i): str(t) for i, t in rows}


def cases_of(db: sqlite3.Connection, anomaly_ids: Collection[str]) -> dict[str, Case]:
    """Anomaly id -> its case now, for the ids that have one (each case read once)."""
    rows = db.execute(
        "SELECT ca.anomaly_id, ca.case_id, cf.body FROM case_anomaly ca"
        " JOIN case_file cf ON cf.id = ca.case_id"
        " WHERE ca.anomaly_id IN (SELECT value FROM json_each(?))",
        [_ids(anomaly_ids)],
    )
    parsed: dict[int, Case] = {}
    out: dict[str, Case] = {}
    for anomaly_id, case_id, body in rows:
        case = parsed.get(case_id)
        if case is None:
            case = parsed[case_id] = case_from_json(json.loads(body))
        out[str(anomaly_id)] = case
    return out


def opened_between(
    db: sqlite3.Connection, start: datetime, end: datetime, enterprises: Collection[str] | None
) -> list[Case]:
    """Every case opened in `[start, end)` of `enterprises` (None: every one), oldest first."""
    scope, args = _scope(enterprises)
    rows = db.execute(
        f"SELECT body FROM case_file WHERE opened_at >= ? AND opened_at < ?{scope} ORDER BY id",
        [_utc(start), _utc(end), *args],
    )
    return [case_from_json(json.loads(r[0])) for r in rows]


def histories(
    db: sqlite3.Connection, case_ids: Collection[int]
) -> dict[int, list[tuple[datetime, str]]]:
    """Case id -> its history as (at, action), oldest first."""
    rows = db.execute(
        "SELECT case_id, at, action FROM case_step"
        " WHERE case_id IN (SELECT value FROM json_each(?)) ORDER BY case_id, seq",
        [json.dumps(sorted({int(c) for c in case_ids}))],
    )
    out: dict[int, list[tuple[datetime, str]]] = {}
    for case_id, at, action in rows:
        out.setdefault(int(case_id), []).append((datetime.fromisoformat(at), str(action)))
    return out
