"""The case store: SQLite (standard library), its own file (``cases.sqlite`` in the data
folder), schema versioned with `gateway.migrations`.

The anomaly store's listener `on_anomaly` opens a case for every anomaly the policy
`open_for` names (by default every `alarm`; `policy(...)` adds `warning`s of chosen types),
also when a later version brings it in (a `device_offline` escalated to `alarm`). The case's
level is its anomaly's severity; when an anomaly of a 预警 case becomes an alarm, the gateway
escalates the case (`escalate`) while it is neither verified nor closed. Otherwise an anomaly
with a case gets nothing new: a replayed event opens no second case. An anomaly of the same
enterprise and Beijing day joins the case in hand (`join`, by the gateway; an alarm raises the
case to 报警) while that one is neither verified nor closed, unless `join_same_day` is off;
anomalies of no enterprise each get their own. An alarm whose 预警 case was already verified or
closed opens a 报警 of its own (or joins the day's open case): the earlier case keeps its record,
and the anomaly's case is the new one. Officers join anomalies by hand with
`act(..., "join")`. A failure of the listener is logged, never raised into the anomaly store.

Every change writes one history row (who, role, when, action, from and to state, details) in
its transaction; history rows cannot be changed or deleted through SQL. An `audit` callable
given to `act` runs inside that transaction before it commits: a change the audit log cannot
record is not made. Unbounded on purpose: cases and their history are the bureau's records
and are never pruned (about a kilobyte a case). Back the file up with the other stores.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog

from ..anomalies.model import Anomaly, AnomalyEvent
from ..migrations import immediate, migrate
from .model import (
    DONE,
    SYSTEM,
    Action,
    Actor,
    Case,
    Conflict,
    apply,
    beijing_day,
    case_from_json,
    case_json,
    details_json,
    details_of,
    open_case,
)
from .schema import MIGRATIONS

log = structlog.get_logger("gateway.cases")

Policy = Callable[[Anomaly], bool]
Audit = Callable[[Case, Case], None]  # (before, after), inside the change's transaction


def policy(warning_types: Collection[str] = ()) -> Policy:
    """A case for every alarm, and for the warnings of these types."""
    types = frozenset(warning_types)
    return lambda a: a.severity == "alarm" or (a.severity == "warning" and a.type in types)


@dataclass(frozen=True, slots=True)
class Step:
    """One history row: a change of a case."""

    seq: int
    case_id: int
    at: datetime
    actor: str
    actor_role: str
    action: str
    from_state: str | None  # None for the opening
    to_state: str
    details: dict[str, Any]

    @classmethod
    def of(cls, r: tuple[Any, ...]) -> Step:
        at, details = datetime.fromisoformat(r[2]), json.loads(r[8])
        return cls(r[0], r[1], at, r[3], r[4], r[5], r[6], r[7], details)


class CaseStore:
    def __init__(
        self,
        path: Path | str,
        open_for: Policy | None = None,
        *,
        join_same_day: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Open (or create) the file, migrating its schema; `StateError` when it was written
        by a newer release. `clock` stamps the cases the listener opens."""
        self.path = path
        self.open_for = open_for if open_for is not None else policy()
        self.join_same_day = join_same_day
        self.clock = clock
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            migrate(self._db, path, "case store", MIGRATIONS)
        except BaseException:
            self._db.close()
            raise
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an officer's action survives a power cut
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    # -- opening --------------------------------------------------------------------------

    def on_anomaly(self, event: AnomalyEvent) -> None:
        """The anomaly store's listener (see the module's docstring)."""
        try:
            self.take(event.anomaly)
        except Exception:
            log.exception("could not open a case", anomaly_id=event.anomaly.id)

    def take(self, anomaly: Anomaly) -> Case | None:
        """The case opened, joined or escalated for the anomaly; None when the policy leaves
        it out or its case has nothing to change."""
        if not self.open_for(anomaly):
            return None
        at = self.clock()
        with self._lock, immediate(self._db):
            held = self.get(self._case_id_of(anomaly.id) or 0)
            if held is not None and not _handled_warning(held, anomaly):
                return self._escalate(held, anomaly, at)
            if held is not None:  # its 预警 was handled: the alarm is a 报警 of its own
                log.info("alarm after a handled warning", case_id=held.id, anomaly_id=anomaly.id)
                self._db.execute("DELETE FROM case_anomaly WHERE anomaly_id = ?", (anomaly.id,))
            target = self._same_day(anomaly) if self.join_same_day else None
            if target is not None:
                joined = {
                    "anomaly_id": anomaly.id,
                    "enterprise": anomaly.enterprise,
                    "day": beijing_day(anomaly.started_at),
                    "level": anomaly.severity,
                }
                return self._change(target, "join", SYSTEM, at, joined, None)
            case = open_case(
                anomaly.id, anomaly.enterprise, anomaly.started_at, at, anomaly.severity
            )
            cursor = self._db.execute(
                "INSERT INTO case_file (enterprise, day, state, opened_at, level, body)"
                " VALUES (?, ?, ?, ?, ?, '{}')",
                (case.enterprise, case.day.isoformat(), case.state, _utc(at), case.level),
            )
            case = replace(case, id=int(cursor.lastrowid or 0))
            self._save(case)
            self._index(anomaly.id, case.id)
            about = {"anomaly_id": anomaly.id, "type": anomaly.type, "severity": anomaly.severity}
            self._step(case.id, SYSTEM, at, "open", None, case.state, about)
            log.info("case opened", case_id=case.id, anomaly_id=anomaly.id)
            return case

    def _escalate(self, case: Case, anomaly: Anomaly, at: datetime) -> Case | None:
        if anomaly.severity != "alarm" or case.level == "alarm":
            return None
        return self._change(case, "escalate", SYSTEM, at, {"anomaly_id": anomaly.id}, None)

    def _same_day(self, anomaly: Anomaly) -> Case | None:
        if not anomaly.enterprise:
            return None
        row = self._db.execute(
            "SELECT body FROM case_file WHERE enterprise = ? AND day = ?"
            " AND state NOT IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 1",
            (anomaly.enterprise, beijing_day(anomaly.started_at).isoformat(), _done()),
        ).fetchone()
        return case_from_json(json.loads(row[0])) if row else None

    # -- acting ---------------------------------------------------------------------------

    def act(
        self,
        case_id: int,
        action: str,
        by: Actor,
        at: datetime,
        details: dict[str, Any],
        audit: Audit | None = None,
    ) -> Case | None:
        """The case after the action (see `model.apply`, whose errors it raises); None when
        there is no such case. A joined anomaly (`anomaly_id`, `enterprise`, `day`) must have
        no case yet (`Conflict`)."""
        with self._lock, immediate(self._db):
            case = self.get(case_id)
            if case is None:
                return None
            return self._change(case, action, by, at, details, audit)

    def _change(
        self,
        case: Case,
        action: str,
        by: Actor,
        at: datetime,
        details: dict[str, Any],
        audit: Audit | None,
    ) -> Case:
        after = apply(case, action, by, at, **details)
        if action == "join":
            anomaly_id = str(details["anomaly_id"])
            other = self._case_id_of(anomaly_id)
            if other is not None:
                raise Conflict(f"anomaly {anomaly_id!r} is in case {other} already")
            self._index(anomaly_id, case.id)
        self._save(after)
        shown = details_json(details_of(cast(Action, action), details))
        self._step(case.id, by, at, action, case.state, after.state, shown)
        if audit is not None:
            audit(case, after)
        return after

    # -- reading --------------------------------------------------------------------------

    def get(self, case_id: int) -> Case | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM case_file WHERE id = ?", (case_id,))
            found = row.fetchone()
        return case_from_json(json.loads(found[0])) if found else None

    def case_of(self, anomaly_id: str) -> Case | None:
        with self._lock:
            case_id = self._case_id_of(anomaly_id)
            return None if case_id is None else self.get(case_id)

    def history(self, case_id: int) -> list[Step]:
        """The case's history rows, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, case_id, at, actor, actor_role, action, from_state, to_state,"
                " details FROM case_step WHERE case_id = ? ORDER BY seq",
                (case_id,),
            ).fetchall()
        return [Step.of(row) for row in rows]

    def query(
        self,
        *,
        now: datetime,
        state: str | None = None,
        level: str | None = None,
        enterprise: str | None = None,
        enterprises: Collection[str] | None = None,
        assignee: str | None = None,
        overdue: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Case], int]:
        """(page of cases, newest first; total matching). `enterprises` limits them to those
        (a caller's scope; None: no limit); `overdue` as of `now`."""
        where: list[str] = []
        args: list[str | int] = []
        if enterprises is not None:
            where.append("enterprise IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(sorted(enterprises)))
        columns = (
            ("state", state),
            ("level", level),
            ("enterprise", enterprise),
            ("assignee", assignee),
        )
        for column, value in columns:
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if overdue is not None:
            late = (
                "(deadline IS NOT NULL AND deadline < ?"
                " AND state NOT IN (SELECT value FROM json_each(?)))"
            )
            where.append(late if overdue else f"NOT {late}")
            args += [_utc(now), _done()]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM case_file{clause}", args).fetchone()
            rows = self._db.execute(
                f"SELECT body FROM case_file{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return [case_from_json(json.loads(r[0])) for r in rows], int(total[0])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM case_file").fetchone()[0])

    def opened_between(
        self, start: datetime, end: datetime, enterprises: Collection[str] | None = None
    ) -> list[Case]:
        """Every case opened in `[start, end)`, oldest first; `enterprises` limits them to
        those (None: no limit). For the reports."""
        where = "opened_at >= ? AND opened_at < ?"
        args: list[str] = [_utc(start), _utc(end)]
        if enterprises is not None:
            where += " AND enterprise IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(sorted(enterprises)))
        with self._lock:
            rows = self._db.execute(
                f"SELECT body FROM case_file WHERE {where} ORDER BY id", args
            ).fetchall()
        return [case_from_json(json.loads(r[0])) for r in rows]

    def overdue_or_unsigned(
        self, *, now: datetime, since: datetime, unsigned_before: datetime
    ) -> list[Case]:
        """For the notifications' escalation, oldest first: the cases overdue at `now` whose
        deadline is not before `since`, and the 报警 cases still 待签收 with no answer opened in
        `[since, unsigned_before)`. Read through the state index; thread-safe (the store's
        lock), so callers on the event loop run it in a thread."""
        from .model import STATES  # the open states, for the (state, deadline) index

        still_open = json.dumps([s for s in STATES if s not in DONE])
        sql = (
            "SELECT body FROM case_file WHERE id IN ("
            " SELECT id FROM case_file WHERE state IN (SELECT value FROM json_each(?))"
            " AND deadline >= ? AND deadline < ?"
            " UNION SELECT id FROM case_file WHERE state = 'new' AND level = 'alarm'"
            " AND opened_at >= ? AND opened_at < ? AND json_extract(body, '$.answer') IS NULL"
            ") ORDER BY id"
        )
        args = (still_open, _utc(since), _utc(now), _utc(since), _utc(unsigned_before))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [case_from_json(json.loads(r[0])) for r in rows]

    # -- writing --------------------------------------------------------------------------

    def _case_id_of(self, anomaly_id: str) -> int | None:
        row = self._db.execute(
            "SELECT case_id FROM case_anomaly WHERE anomaly_id = ?", (anomaly_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def _save(self, case: Case) -> None:
        self._db.execute(
            "UPDATE case_file SET state = ?, level = ?, assignee = ?, deadline = ?, body = ?"
            " WHERE id = ?",
            (
                case.state,
                case.level,
                case.assignee,
                _utc(case.deadline) if case.deadline else None,
                json.dumps(case_json(case), ensure_ascii=False),
                case.id,
            ),
        )

    def _index(self, anomaly_id: str, case_id: int) -> None:
        self._db.execute(
            "INSERT INTO case_anomaly (anomaly_id, case_id) VALUES (?, ?)", (anomaly_id, case_id)
        )

    def _step(
        self,
        case_id: int,
        by: Actor,
        at: datetime,
        action: str,
        from_state: str | None,
        to_state: str,
        details: dict[str, Any],
    ) -> None:
        self._db.execute(
            "INSERT INTO case_step (case_id, at, actor, actor_role, action, from_state,"
            " to_state, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                at.astimezone(UTC).isoformat(timespec="microseconds"),
                by.name,
                by.role,
                action,
                from_state,
                to_state,
                json.dumps(details, ensure_ascii=False, sort_keys=True),
            ),
        )


def _handled_warning(case: Case, anomaly: Anomaly) -> bool:
    """A 预警 case verified or closed whose anomaly has become an alarm."""
    return anomaly.severity == "alarm" and case.level == "warning" and case.state in DONE


def _done() -> str:
    return json.dumps(sorted(DONE))


def _utc(moment: datetime) -> str:
    """Sortable UTC text for the indexed columns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
