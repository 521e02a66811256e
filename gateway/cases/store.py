"""The case store: SQLite (standard library), its own file (``cases.sqlite`` in the data
folder, `sqlite_backend`), or PostgreSQL shared by every node of a cluster
(`gateway.cluster.pg_cases`); the logic below is the same over both (`backend.CaseBackend`).

The anomaly store's listener `on_anomaly` opens a case for every anomaly the policy
`open_for` names (by default every `alarm`; `policy(...)` adds `warning`s of chosen types),
also when a later version brings it in (a `device_offline` escalated to `alarm`). The case's
level is its anomaly's severity; when an anomaly of a 预警 case becomes an alarm, the gateway
escalates the case (`escalate`) while it is neither verified nor closed. Otherwise an anomaly
with a case gets nothing new: a replayed event opens no second case, whichever node's
listener hears it. An anomaly of the same enterprise and Beijing day joins the case in hand
(`join`, by the gateway; an alarm raises the case to 报警) while that one is neither verified
nor closed, unless `join_same_day` is off; anomalies of no enterprise each get their own. An
alarm whose 预警 case was already verified or closed opens a 报警 of its own (or joins the
day's open case): the earlier case keeps its record, and the anomaly's case is the new one.
Officers join anomalies by hand with `act(..., "join")`. A failure of the listener is logged,
never raised into the anomaly store.

Every change writes one history row (who, role, when, action, from and to state, details) in
its transaction; history rows cannot be changed or deleted through SQL. An `audit` callable
given to `act` runs inside that transaction before it commits: a change the audit log cannot
record is not made. A change reads its case inside its transaction and holds it until the
commit, so two writers (two nodes) acting on one case never both act on the same state: the
second sees the first's result, and `model.apply` refuses what it no longer allows
(`Conflict`). Unbounded on purpose: cases and their history are the bureau's records and are
never pruned (about a kilobyte a case). Back the file up with the other stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog

from ..anomalies.model import Anomaly, AnomalyEvent
from .backend import CaseBackend, CaseChange, CaseFilter, Step
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
from .sqlite_backend import SqliteCases

__all__ = ["Audit", "CaseStore", "Policy", "Step", "policy"]

log = structlog.get_logger("gateway.cases")

Policy = Callable[[Anomaly], bool]
Audit = Callable[[Case, Case], None]  # (before, after), inside the change's transaction


def policy(warning_types: Collection[str] = ()) -> Policy:
    """A case for every alarm, and for the warnings of these types."""
    types = frozenset(warning_types)
    return lambda a: a.severity == "alarm" or (a.severity == "warning" and a.type in types)


class CaseStore:
    def __init__(
        self,
        where: Path | str | CaseBackend,
        open_for: Policy | None = None,
        *,
        join_same_day: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Open the store: a SQLite file's path (created, its schema migrated; `StateError`
        when written by a newer release), or a backend such as PostgreSQL's. `clock` stamps
        the cases the listener opens."""
        backend = SqliteCases(where) if isinstance(where, Path | str) else where
        self.backend: CaseBackend = backend
        self.path = backend.path
        self.open_for = open_for if open_for is not None else policy()
        self.join_same_day = join_same_day
        self.clock = clock

    def close(self) -> None:
        self.backend.close()

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
        with self.backend.change() as tx:
            tx.lock_index()  # another node's listener hearing the same event waits, then sees it
            held = _case(tx.body(tx.case_id_of(anomaly.id) or 0))
            if held is not None and not _handled_warning(held, anomaly):
                return self._escalate(tx, held, anomaly, at)
            if held is not None:  # its 预警 was handled: the alarm is a 报警 of its own
                log.info("alarm after a handled warning", case_id=held.id, anomaly_id=anomaly.id)
                tx.unindex(anomaly.id)
            target = self._same_day(tx, anomaly) if self.join_same_day else None
            if target is not None:
                joined = {
                    "anomaly_id": anomaly.id,
                    "enterprise": anomaly.enterprise,
                    "day": beijing_day(anomaly.started_at),
                    "level": anomaly.severity,
                }
                return _change(tx, target, "join", SYSTEM, at, joined, None)
            case = open_case(
                anomaly.id, anomaly.enterprise, anomaly.started_at, at, anomaly.severity
            )
            case = replace(case, id=tx.insert(case))
            tx.save(case, _body(case))
            tx.index(anomaly.id, case.id)
            about = {"anomaly_id": anomaly.id, "type": anomaly.type, "severity": anomaly.severity}
            _step(tx, case.id, SYSTEM, at, "open", None, case.state, about)
            log.info("case opened", case_id=case.id, anomaly_id=anomaly.id)
            return case

    def _escalate(self, tx: CaseChange, case: Case, anomaly: Anomaly, at: datetime) -> Case | None:
        if anomaly.severity != "alarm" or case.level == "alarm":
            return None
        return _change(tx, case, "escalate", SYSTEM, at, {"anomaly_id": anomaly.id}, None)

    def _same_day(self, tx: CaseChange, anomaly: Anomaly) -> Case | None:
        if not anomaly.enterprise:
            return None
        return _case(tx.same_day(anomaly.enterprise, beijing_day(anomaly.started_at)))

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
        with self.backend.change() as tx:
            if action == "join":  # before the case, in the order `take` holds them
                tx.lock_index()
            case = _case(tx.body(case_id))
            if case is None:
                return None
            return _change(tx, case, action, by, at, details, audit)

    # -- reading --------------------------------------------------------------------------

    def get(self, case_id: int) -> Case | None:
        return _case(self.backend.body(case_id))

    def case_of(self, anomaly_id: str) -> Case | None:
        return _case(self.backend.body_of(anomaly_id))

    def history(self, case_id: int) -> list[Step]:
        """The case's history rows, oldest first."""
        return self.backend.history(case_id)

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
        columns = {
            column: value
            for column, value in (
                ("state", state),
                ("level", level),
                ("enterprise", enterprise),
                ("assignee", assignee),
            )
            if value is not None
        }
        bodies, total = self.backend.query(
            CaseFilter(enterprises, columns, overdue, now), limit, offset
        )
        return [_parse(b) for b in bodies], total

    def __len__(self) -> int:
        return self.backend.count()

    def opened_between(
        self, start: datetime, end: datetime, enterprises: Collection[str] | None = None
    ) -> list[Case]:
        """Every case opened in `[start, end)`, oldest first; `enterprises` limits them to
        those (None: no limit). For the reports."""
        return [_parse(b) for b in self.backend.opened_between(start, end, enterprises)]

    def overdue_or_unsigned(
        self, *, now: datetime, since: datetime, unsigned_before: datetime
    ) -> list[Case]:
        """For the notifications' escalation, oldest first: the cases overdue at `now` whose
        deadline is not before `since`, and the 报警 cases still 待签收 with no answer opened in
        `[since, unsigned_before)`. Read through the state index; thread-safe, so callers on
        the event loop run it in a thread."""
        bodies = self.backend.overdue_or_unsigned(now, since, unsigned_before)
        return [_parse(b) for b in bodies]


def _change(
    tx: CaseChange,
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
        other = tx.case_id_of(anomaly_id)
        if other is not None:
            raise Conflict(f"anomaly {anomaly_id!r} is in case {other} already")
        tx.index(anomaly_id, case.id)
    tx.save(after, _body(after))
    shown = details_json(details_of(cast(Action, action), details))
    _step(tx, case.id, by, at, action, case.state, after.state, shown)
    if audit is not None:
        audit(case, after)
    return after


def _step(
    tx: CaseChange,
    case_id: int,
    by: Actor,
    at: datetime,
    action: str,
    from_state: str | None,
    to_state: str,
    details: dict[str, Any],
) -> None:
    shown = json.dumps(details, ensure_ascii=False, sort_keys=True)
    tx.step(case_id, at, by.name, by.role, action, from_state, to_state, shown)


def _handled_warning(case: Case, anomaly: Anomaly) -> bool:
    """A 预警 case verified or closed whose anomaly has become an alarm."""
    return anomaly.severity == "alarm" and case.level == "warning" and case.state in DONE


def _body(case: Case) -> str:
    return json.dumps(case_json(case), ensure_ascii=False)


def _parse(body: str) -> Case:
    return case_from_json(json.loads(body))


def _case(body: str | None) -> Case | None:
    return None if body is None else _parse(body)
