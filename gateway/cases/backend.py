"""What a `CaseStore` keeps its cases in: the SQLite file (`sqlite_backend`), or PostgreSQL
(`gateway.cluster.pg_cases`) shared by every node of a cluster.

A backend stores JSON bodies and the columns the lists filter on; the store's logic (which
anomaly opens, joins or escalates which case, `model.apply`) runs once, over `CaseChange`:
one transaction in which every case read is held until the commit, so two writers never
both change a case from the same state.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from .model import DONE, Case


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
        """From a row of (seq, case_id, at, actor, actor_role, action, from_state, to_state,
        details): `at` as ISO text or an aware datetime, `details` as JSON text."""
        at = r[2] if isinstance(r[2], datetime) else datetime.fromisoformat(r[2])
        details = json.loads(r[8])
        return cls(r[0], r[1], at.astimezone(UTC), r[3], r[4], r[5], r[6], r[7], details)


class CaseFilter:
    """The filters of `CaseStore.query`."""

    __slots__ = ("columns", "enterprises", "now", "overdue")

    def __init__(
        self,
        enterprises: Collection[str] | None,
        columns: dict[str, str],
        overdue: bool | None,
        now: datetime,
    ) -> None:
        self.enterprises = None if enterprises is None else sorted(enterprises)
        self.columns = columns  # column -> value, all to match
        self.overdue = overdue  # as of `now`
        self.now = now


DONE_STATES = sorted(DONE)  # never overdue, take no anomaly


class CaseChange(Protocol):
    """One write transaction: what it reads of a case stays as read until it commits."""

    def lock_index(self) -> None:
        """Hold which anomaly is in which case until the end: openings and joins of other
        writers wait (take it before any case is read)."""

    def body(self, case_id: int) -> str | None: ...
    def case_id_of(self, anomaly_id: str) -> int | None: ...

    def same_day(self, enterprise: str, day: date) -> str | None:
        """The newest case of `enterprise` and Beijing `day` neither verified nor closed."""

    def insert(self, case: Case) -> int:
        """A new row for `case` (its body written by `save`); its id."""

    def save(self, case: Case, body: str) -> None: ...
    def index(self, anomaly_id: str, case_id: int) -> None: ...
    def unindex(self, anomaly_id: str) -> None: ...

    def step(
        self,
        case_id: int,
        at: datetime,
        actor: str,
        actor_role: str,
        action: str,
        from_state: str | None,
        to_state: str,
        details: str,
    ) -> None: ...


class CaseBackend(Protocol):
    @property
    def path(self) -> Path | str:
        """The SQLite file, or where PostgreSQL is (no password)."""

    def change(self) -> AbstractContextManager[CaseChange]:
        """A write transaction: committed when the block ends, rolled back when it raises."""

    def body(self, case_id: int) -> str | None: ...
    def body_of(self, anomaly_id: str) -> str | None: ...
    def history(self, case_id: int) -> list[Step]: ...
    def query(self, where: CaseFilter, limit: int, offset: int) -> tuple[list[str], int]: ...
    def count(self) -> int: ...

    def opened_between(
        self, start: datetime, end: datetime, enterprises: Collection[str] | None
    ) -> list[str]: ...

    def overdue_or_unsigned(
        self, now: datetime, since: datetime, unsigned_before: datetime
    ) -> list[str]: ...

    def close(self) -> None: ...
