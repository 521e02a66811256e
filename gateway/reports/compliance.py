"""Compliance with alerts and orders (pure): each alert or order in force during the period,
for each enterprise of the scope it covers, is complied with, violated (a `post_shutdown`
anomaly of the enterprise overlaps its window), or cannot be verified (no stored data of the
enterprise's devices in its window)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..anomalies.model import Anomaly
from ..regime import Alert, Order
from ..registry import Enterprise
from .model import ComplianceCounts, ComplianceRow, Status
from .period import Period

Within = Callable[[str, Sequence[str]], bool]


@dataclass(frozen=True, slots=True)
class Obligation:
    """One alert or order for one enterprise, its window clipped to the period and to the
    report's moment (and ended by a withdrawal)."""

    source: str  # "alert" or "order"
    ref: str
    level: str | None
    order_kind: str | None
    percent: float | None
    enterprise: str
    name: str
    starts_at: datetime
    ends_at: datetime


def _window(
    starts_at: datetime,
    ends_at: datetime,
    withdrawn_at: datetime | None,
    period: Period,
    now: datetime,
) -> tuple[datetime, datetime] | None:
    end = min(ends_at, period.end, now, *(t for t in (withdrawn_at,) if t is not None))
    start = max(starts_at, period.start)
    return (start, end) if end > start else None


def obligations(
    alerts: Iterable[Alert],
    orders: Iterable[Order],
    enterprises: Sequence[Enterprise],
    within: Within | None,
    period: Period,
    now: datetime,
) -> list[Obligation]:
    """Every (alert or order, covered enterprise of `enterprises`) in force during the
    period up to `now`, by start, then enterprise."""
    out: list[Obligation] = []
    for alert in alerts:
        window = _window(alert.starts_at, alert.ends_at, alert.withdrawn_at, period, now)
        if window is None:
            continue
        for ent in enterprises:
            if alert.covers(ent.id, ent.region, within):
                out.append(
                    Obligation(
                        "alert", alert.id, alert.level, None, None, ent.id, ent.name, *window
                    )
                )
    by_id = {e.id: e for e in enterprises}
    for order in orders:
        ent_ = by_id.get(order.enterprise)
        window = _window(order.starts_at, order.ends_at, order.withdrawn_at, period, now)
        if ent_ is None or window is None:
            continue
        out.append(
            Obligation(
                "order", order.id, None, order.kind, order.percent, ent_.id, ent_.name, *window
            )
        )
    return sorted(out, key=lambda o: (o.starts_at, o.enterprise, o.source, o.ref))


def violations(obligation: Obligation, anomalies: Iterable[Anomaly]) -> list[str]:
    """Ids of the `post_shutdown` anomalies of the obligation's enterprise that overlap its
    window (an open one reaches to now; an instant counts at its time)."""
    return sorted(
        a.id
        for a in anomalies
        if a.family == "post_shutdown"
        and a.enterprise == obligation.enterprise
        and a.started_at < obligation.ends_at
        and (a.ended_at is None or a.ended_at >= obligation.starts_at)
    )


def judge(
    items: Sequence[Obligation],
    anomalies: Sequence[Anomaly],
    has_data: Mapping[Obligation, bool] | None,
) -> list[ComplianceRow]:
    """Each obligation's status; `has_data` says whether its enterprise's devices stored
    anything in its window (None: not known, so `unknown` unless violated)."""
    rows = []
    for o in items:
        found = violations(o, anomalies)
        status: Status
        if found:
            status = "violated"
        elif has_data is None:
            status = "unknown"
        else:
            status = "complied" if has_data.get(o, False) else "unverifiable"
        rows.append(
            ComplianceRow(
                source="alert" if o.source == "alert" else "order",
                ref=o.ref,
                level=o.level,
                order_kind=o.order_kind,
                percent=o.percent,
                enterprise=o.enterprise,
                name=o.name,
                starts_at=o.starts_at,
                ends_at=o.ends_at,
                status=status,
                anomalies=found,
            )
        )
    return rows


def tally(rows: Iterable[ComplianceRow]) -> ComplianceCounts:
    found = {"complied": 0, "violated": 0, "unverifiable": 0, "unknown": 0}
    for r in rows:
        found[r.status] += 1
    return ComplianceCounts(**found)
