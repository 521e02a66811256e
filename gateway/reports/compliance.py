"""Compliance with alerts and orders (pure): each alert or order in force during the period,
for each enterprise of the scope it covers, is complied with, violated (a `post_shutdown`
anomaly of the enterprise that names it among its sources overlaps its window), or cannot be
verified (no stored data of the enterprise's devices in its window).

An anomaly names what obliged the enterprise in its evidence, as the rules write it
(`gateway.rules.obligation.Source.evidence`: `kind` and `ref`): `production_during_shutdown`
and `emission_during_shutdown` under `shutdown.sources`, `curtailment_exceeded` under
`sources`, `banned_vehicle_entry` under `source` (and `alert_id`). An order is named as
`order` with its id; an alert as `alert plan` with its id; a calendar control period
(`period:<name>:<n>`) as `control period` with its name. So L3 running under an alert violates
the alert, not an order on L1, and a banned truck violates the alert, not a shutdown order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..anomalies.model import Anomaly
from ..regime import PERIOD_PREFIX, Alert, Order
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

    @property
    def named_as(self) -> tuple[str, str]:
        """(kind, ref) of this alert or order in an anomaly's evidence sources."""
        return ("order", self.ref) if self.source == "order" else alert_named_as(self.ref)


def alert_named_as(alert_id: str) -> tuple[str, str]:
    """(kind, ref) of an alert in evidence sources: a control period by its name."""
    if alert_id.startswith(PERIOD_PREFIX):
        return ("control period", alert_id.removeprefix(PERIOD_PREFIX).rpartition(":")[0])
    return ("alert plan", alert_id)


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
                        "alert",
                        alert.id,
                        alert.level or alert.layer,
                        None,
                        None,
                        ent.id,
                        ent.name,
                        *window,
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


def _dicts(value: object) -> Iterator[Mapping[str, object]]:
    if isinstance(value, Mapping):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, Mapping))


def sources(anomaly: Anomaly) -> set[tuple[str, str]]:
    """(kind, ref) of every order, alert plan and control period the anomaly's evidence
    names; an `alert_id` counts as an alert plan, or as the control period it stands for."""
    evidence = anomaly.evidence
    shutdown = evidence.get("shutdown")
    found = [
        *(_dicts(shutdown.get("sources")) if isinstance(shutdown, Mapping) else ()),
        *_dicts(evidence.get("sources")),
        *_dicts(evidence.get("source")),  # a dict for vehicles (a curtailment's is a label)
    ]
    out = {(str(s.get("kind")), str(s.get("ref"))) for s in found}
    alert_id = evidence.get("alert_id")
    if isinstance(alert_id, str) and alert_id:
        out.add(alert_named_as(alert_id))
    return out


def overlaps(anomaly: Anomaly, start: datetime, end: datetime) -> bool:
    """Whether the anomaly lies in `[start, end)` for some time: an open one reaches to now,
    an instant counts at its time, one that ended exactly at `start` does not."""
    if anomaly.started_at >= end:
        return False
    if anomaly.ended_at is None:
        return True
    if anomaly.ended_at == anomaly.started_at:
        return anomaly.started_at >= start
    return anomaly.ended_at > start


def violations(obligation: Obligation, anomalies: Iterable[Anomaly]) -> list[str]:
    """Ids of the `post_shutdown` anomalies of the obligation's enterprise that name it
    among their sources and overlap its window."""
    return sorted(
        a.id
        for a in anomalies
        if a.family == "post_shutdown"
        and a.enterprise == obligation.enterprise
        and overlaps(a, obligation.starts_at, obligation.ends_at)
        and obligation.named_as in sources(a)
    )


def judge(
    items: Sequence[Obligation],
    anomalies: Sequence[Anomaly],
    has_data: Mapping[Obligation, bool] | None,
) -> list[ComplianceRow]:
    """Each obligation's status; `has_data` says whether its enterprise's devices stored
    anything in its window (None: not known, so `unknown` unless violated)."""
    rows = []
    by_enterprise: dict[str, list[Anomaly]] = {}
    for a in anomalies:
        by_enterprise.setdefault(a.enterprise, []).append(a)
    for o in items:
        found = violations(o, by_enterprise.get(o.enterprise, ()))
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
