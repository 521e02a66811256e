"""How quickly cases are handled (pure): when each case was signed for and closed, from its
history, and the figures of a set of cases (counts, median hours, overdue)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import median

from ..cases.model import Case
from .model import Timeliness


@dataclass(frozen=True, slots=True)
class Handled:
    """A case with the times that matter here: its first signing, and its last closing
    when it is closed now (a reopened case that is not closed again has none)."""

    case: Case
    signed_at: datetime | None
    closed_at: datetime | None


def handled(case: Case, steps: Sequence[tuple[datetime, str]]) -> Handled:
    """`steps`: the case's history as (at, action), oldest first."""
    signed = next((at for at, action in steps if action == "sign"), None)
    closes = [at for at, action in steps if action == "close"]
    closed = closes[-1] if closes and case.state == "closed" else None
    return Handled(case, signed, closed)


def hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def median_hours(values: Sequence[float]) -> float | None:
    return round(median(values), 2) if values else None


def timeliness(cases: Sequence[Handled], now: datetime) -> Timeliness:
    """The figures of `cases` (those opened in a period), as of `now`."""
    to_sign = [hours(h.case.opened_at, h.signed_at) for h in cases if h.signed_at is not None]
    to_close = [hours(h.case.opened_at, h.closed_at) for h in cases if h.closed_at is not None]
    return Timeliness(
        opened=len(cases),
        signed=len(to_sign),
        closed=len(to_close),
        median_sign_h=median_hours(to_sign),
        median_close_h=median_hours(to_close),
        overdue=sum(1 for h in cases if h.case.overdue(now)),
    )
