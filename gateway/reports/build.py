"""Making a report: reads the anomaly and case stores, the regime, the registry and InfluxDB
for a period and a scope, and hands what it read to the pure figures (`counts`,
`timeliness`, `transmission`, `compliance`, `feedback`). InfluxDB trouble does not stop a
report: the parts that need it say `unknown` (or null) and `problems` says why."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..anomalies.model import Anomaly
from ..anomalies.store import AnomalyStore
from ..anomalies.types import TYPES
from ..cases.model import Case
from ..cases.store import CaseStore
from ..influx.reader import QueryError, SeriesReader
from ..regime import Regime
from ..registry import Enterprise, Registry
from . import compliance, counts, stored
from .feedback import HIGH_SHARE, MIN_VERDICTS, Judged, feedback, high_false_alarm
from .model import Feedback, HighFalseAlarm, PeriodOut, Report, ScopeOut
from .period import BEIJING, Period
from .thresholds import thresholds
from .timeliness import Handled, handled, timeliness
from .transmission import DeviceRef, transmission

PAGE = 5000  # anomalies read from the store at a time
TOP = 10
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where a report reads from; `series` is None when InfluxDB is not configured."""

    store: AnomalyStore
    cases: CaseStore
    regime: Regime
    registry: Registry
    series: SeriesReader | None


@dataclass(frozen=True, slots=True)
class Scope:
    """The enterprises a report covers: `enterprises` None is everything (anomalies of no
    enterprise too); `region` and `enterprise` as asked, for the record."""

    enterprises: frozenset[str] | None
    region: str | None = None
    enterprise: str | None = None

    def registered(self, registry: Registry) -> list[Enterprise]:
        return [
            e
            for e in registry.data.enterprises
            if self.enterprises is None or e.id in self.enterprises
        ]

    def out(self, registry: Registry) -> ScopeOut:
        return ScopeOut(
            region=self.region,
            enterprise=self.enterprise,
            enterprises=len(self.registered(registry)),
            whole=self.enterprises is None,
        )


def period_out(period: Period, now: datetime) -> PeriodOut:
    return PeriodOut(
        kind=period.kind,
        label=period.label,
        start=period.start,
        end=period.end,
        hours=period.hours,
        hours_ended=period.hours_ended(now),
    )


def overlapping(
    store: AnomalyStore,
    scope: Collection[str] | None,
    start: datetime,
    end: datetime,
    family: str | None = None,
) -> list[Anomaly]:
    """Every anomaly of the scope overlapping `[start, end)`, read page by page (an anomaly
    recorded meanwhile may shift a page: none is taken twice)."""
    seen: dict[str, Anomaly] = {}
    offset = 0
    while True:
        page, _ = store.query(
            enterprises=scope,
            family=family,
            since=start,
            until=end - _TICK,
            limit=PAGE,
            offset=offset,
        )
        for a in page:
            seen.setdefault(a.id, a)
        if len(page) < PAGE:
            return list(seen.values())
        offset += len(page)


def _handled(cases: CaseStore, opened: list[Case]) -> list[Handled]:
    return [handled(c, [(s.at, s.action) for s in cases.history(c.id)]) for c in opened]


def _names(registry: Registry) -> dict[str, str]:
    return {e.id: e.name for e in registry.data.enterprises}


def _devices(ents: list[Enterprise]) -> Iterator[DeviceRef]:
    for e in ents:
        for o in e.outlets:
            if o.kind != "power":  # meters behind a logger send no hourly emission records
                yield DeviceRef(e.id, e.name, o.id, o.mn)


async def report(src: Sources, period: Period, scope: Scope, now: datetime) -> Report:
    """The report of `period` for `scope` as of `now`."""
    registry = src.registry
    ents = scope.registered(registry)
    problems: list[str] = []
    found = counts.started_in(
        overlapping(src.store, scope.enterprises, period.start, period.end), period
    )
    case_of = {a.id: c for a in found if (c := src.cases.case_of(a.id)) is not None}
    opened = src.cases.opened_between(period.start, period.end, scope.enterprises)

    devices = list(_devices(ents))
    rates = None
    items = compliance.obligations(
        [*src.regime.list_alerts(), *src.regime.calendar()],
        src.regime.list_orders(),
        ents,
        src.regime.within,
        period,
        now,
    )
    has_data: dict[compliance.Obligation, bool] | None = None
    if src.series is None:
        problems.append("InfluxDB is not configured: no transmission rates, compliance unknown")
    else:
        try:
            times = await stored.hourly_times(
                src.series, [d.mn for d in devices], period.start, period.until(now)
            )
            rates = transmission(devices, times, period, now)
            has_data = {}
            windows: dict[tuple[datetime, datetime], list[compliance.Obligation]] = {}
            for o in items:
                windows.setdefault((o.starts_at, o.ends_at), []).append(o)
            for (start, end), group in windows.items():
                with_data = await stored.enterprises_with_data(
                    src.series, [o.enterprise for o in group], start, end
                )
                has_data.update({o: o.enterprise in with_data for o in group})
        except QueryError as exc:
            rates, has_data = None, None
            problems.append(f"InfluxDB could not be read: {exc}")
    post_shutdown = overlapping(
        src.store, scope.enterprises, period.start, period.end, "post_shutdown"
    )
    rows = compliance.judge(items, post_shutdown, has_data)
    return Report(
        period=period_out(period, now),
        scope=scope.out(registry),
        generated_at=now.astimezone(BEIJING),
        anomalies=counts.count(found, case_of),
        top_enterprises=counts.top_enterprises(found, _names(registry), TOP),
        timeliness=timeliness(_handled(src.cases, opened), now),
        transmission=rates,
        compliance=rows,
        compliance_counts=compliance.tally(rows),
        problems=problems,
    )


def verdict_feedback(
    src: Sources, period: Period, scope: Scope, now: datetime, *, with_thresholds: bool
) -> Feedback:
    """The verdict feedback of the cases opened in `period` within `scope`; the list of
    types with a high false-alarm share (and their thresholds) when `with_thresholds`."""
    registry = src.registry
    opened = src.cases.opened_between(period.start, period.end, scope.enterprises)
    judged = []
    for h in _handled(src.cases, opened):
        types = frozenset(a.type for i in h.case.anomalies if (a := src.store.get(i)) is not None)
        ent = registry.enterprise(h.case.enterprise)
        judged.append(Judged(h, types, ent.region if ent is not None else ""))
    totals, regional = feedback(judged, [t.name for t in TYPES], now)
    high = None
    if with_thresholds:
        ents = scope.registered(registry)
        high = [
            HighFalseAlarm(
                type=r.type,
                verdicts=r.verdicts,
                false_alarm=r.false_alarm,
                false_alarm_share=r.false_alarm_share or 0.0,
                thresholds=thresholds(r.type, ents),
            )
            for r in high_false_alarm(totals)
        ]
    return Feedback(
        period=period_out(period, now),
        scope=scope.out(registry),
        generated_at=now.astimezone(BEIJING),
        min_verdicts=MIN_VERDICTS,
        high_share=HIGH_SHARE,
        by_type=totals,
        by_type_region=regional,
        high_false_alarm=high,
    )
