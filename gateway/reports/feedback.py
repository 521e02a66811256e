"""Verdict feedback (pure): how officers judged the cases of each anomaly type, per region and
over all, and which types officers call 误报 (false alarm) too often.

A case is counted once for every distinct type among its anomalies (a case holding an
`over_limit` and a `data_gap` counts for both): the verdict is on the case, not on one
anomaly. Shares are over the cases with a verdict now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .model import FeedbackRow
from .timeliness import Handled, hours, median_hours

HIGH_SHARE = 0.30  # a type is listed when at least this share of its verdicts is 误报
MIN_VERDICTS = 5  # ... and it has at least this many verdicts


@dataclass(frozen=True, slots=True)
class Judged:
    """A case with the types of its anomalies and its enterprise's region."""

    handled: Handled
    types: frozenset[str]
    region: str


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _row(type_: str, region: str | None, items: Sequence[Handled], now: datetime) -> FeedbackRow:
    verdicts = [h.case.finding.verdict for h in items if h.case.finding is not None]
    n = len(verdicts)
    confirmed = verdicts.count("confirmed")
    false_alarm = verdicts.count("false_alarm")
    device_fault = verdicts.count("device_fault")
    to_sign = [hours(h.case.opened_at, h.signed_at) for h in items if h.signed_at is not None]
    to_close = [hours(h.case.opened_at, h.closed_at) for h in items if h.closed_at is not None]
    return FeedbackRow(
        type=type_,
        region=region,
        cases=len(items),
        verdicts=n,
        confirmed=confirmed,
        false_alarm=false_alarm,
        device_fault=device_fault,
        confirmed_share=_share(confirmed, n),
        false_alarm_share=_share(false_alarm, n),
        device_fault_share=_share(device_fault, n),
        median_sign_h=median_hours(to_sign),
        median_close_h=median_hours(to_close),
        overdue=sum(1 for h in items if h.case.overdue(now)),
    )


def feedback(
    cases: Iterable[Judged], type_order: Sequence[str], now: datetime
) -> tuple[list[FeedbackRow], list[FeedbackRow]]:
    """(one row per type over every region, one row per type and region), types in
    `type_order` (others after, by name), regions by id; only types with cases."""
    by_type: dict[str, list[Handled]] = {}
    by_region: dict[tuple[str, str], list[Handled]] = {}
    for judged in cases:
        for t in judged.types:
            by_type.setdefault(t, []).append(judged.handled)
            by_region.setdefault((t, judged.region), []).append(judged.handled)
    rank = {t: i for i, t in enumerate(type_order)}

    def key(t: str) -> tuple[int, str]:
        return (rank.get(t, len(rank)), t)

    totals = [_row(t, None, by_type[t], now) for t in sorted(by_type, key=key)]
    regional = [
        _row(t, r, by_region[(t, r)], now)
        for t, r in sorted(by_region, key=lambda tr: (key(tr[0]), tr[1]))
    ]
    return totals, regional


def high_false_alarm(
    totals: Iterable[FeedbackRow], share: float = HIGH_SHARE, least: int = MIN_VERDICTS
) -> list[FeedbackRow]:
    """The rows with at least `least` verdicts and a 误报 share of at least `share`,
    highest share first."""
    high = [r for r in totals if r.verdicts >= least and r.false_alarm >= share * r.verdicts]
    return sorted(high, key=lambda r: (-(r.false_alarm_share or 0.0), r.type))
