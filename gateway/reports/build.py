"""Making a report: reads the anomaly and case stores (`reading`: their SQLite files or
PostgreSQL), the regime, the registry and InfluxDB for a period and a scope, and hands what it
read to the pure figures (`counts`, `timeliness`, `transmission`, `compliance`, `feedback`).
The store reads, the JSON they hold and the figures run in a worker thread
(`asyncio.to_thread`), so the event loop that acknowledges devices goes on meanwhile; only the
InfluxDB queries (asynchronous) run on it.
InfluxDB trouble does not stop a report: the parts that need it say `unknown` (or null) and
`problems` says why."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..anomalies.model import Anomaly
from ..anomalies.store import AnomalyStore
from ..anomalies.types import TYPES
from ..cases.model import Case
from ..cases.store import CaseStore
from ..influx.reader import QueryError, SeriesReader
from ..regime import Alert, Order, Regime
from ..registry import Enterprise, Registry
from . import compliance, counts, reading, stored, transport
from .feedback import HIGH_SHARE, MIN_VERDICTS, Judged, feedback, high_false_alarm
from .model import Feedback, HighFalseAlarm, PeriodOut, Report, ReportNote, ScopeOut
from .passages import PassageCount, Unsupported, heavy_passages
from .period import BEIJING, Period
from .problems import note
from .thresholds import thresholds
from .timeliness import Handled, handled, timeliness
from .transmission import DeviceRef, transmission

TOP = 10


@dataclass(frozen=True, slots=True)
class Sources:
    """Where a report reads from; `series` is None when InfluxDB is not configured. The
    anomaly and case stores are read on connections of the report's own
    (`reading.source`), never the stores' connections."""

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


@dataclass(frozen=True, slots=True)
class _Read:
    """What the stores and the regime hold for one report."""

    found: list[Anomaly]  # started in the period
    case_of: dict[str, Case]
    handled: list[Handled]  # the cases opened in the period
    post_shutdown: list[Anomaly]  # overlapping the period
    items: list[compliance.Obligation]


def _handled(
    db: reading.Reader, period: Period, enterprises: frozenset[str] | None
) -> list[Handled]:
    """The cases opened in the period, with their histories (two queries)."""
    opened = reading.opened_between(db, period.start, period.end, enterprises)
    steps = reading.histories(db, [c.id for c in opened])
    return [handled(c, steps.get(c.id, [])) for c in opened]


def _read(
    src: Sources,
    period: Period,
    scope: Scope,
    ents: list[Enterprise],
    regime: tuple[list[Alert], list[Order]],
    now: datetime,
) -> _Read:
    """Reads the stores (in the calling thread, on connections of its own)."""
    with reading.source(src.store) as db:
        found = reading.started_between(db, scope.enterprises, period.start, period.end)
        post = reading.overlapping(db, scope.enterprises, period.start, period.end, "post_shutdown")
    with reading.source(src.cases) as db:
        case_of = reading.cases_of(db, [a.id for a in found])
        handled_ = _handled(db, period, scope.enterprises)
    alerts, orders = regime
    items = compliance.obligations(alerts, orders, ents, src.regime.within, period, now)
    return _Read(found, case_of, handled_, post, items)


def _names(registry: Registry) -> dict[str, str]:
    return {e.id: e.name for e in registry.data.enterprises}


def _devices(ents: list[Enterprise]) -> Iterator[DeviceRef]:
    for e in ents:
        for o in e.outlets:
            if o.kind != "power":  # meters behind a logger send no hourly emission records
                yield DeviceRef(e.id, e.name, o.id, o.mn)


async def _stored(
    series: SeriesReader,
    devices: Sequence[DeviceRef],
    items: Sequence[compliance.Obligation],
    period: Period,
    now: datetime,
) -> tuple[dict[str, list[datetime]], dict[compliance.Obligation, bool]]:
    """(MN -> times of its hourly records, obligation -> whether its enterprise stored
    anything in its window), from InfluxDB; QueryError when it cannot be read."""
    times = await stored.hourly_times(
        series, [d.mn for d in devices], period.start, period.until(now)
    )
    has_data: dict[compliance.Obligation, bool] = {}
    windows: dict[tuple[datetime, datetime], list[compliance.Obligation]] = {}
    for o in items:
        windows.setdefault((o.starts_at, o.ends_at), []).append(o)
    for (start, end), group in windows.items():
        with_data = await stored.enterprises_with_data(
            series, [o.enterprise for o in group], start, end
        )
        has_data.update({o: o.enterprise in with_data for o in group})
    return times, has_data


def _figures(
    read: _Read,
    src: Sources,
    period: Period,
    scope: Scope,
    now: datetime,
    devices: Sequence[DeviceRef],
    influx: tuple[dict[str, list[datetime]], dict[compliance.Obligation, bool]] | None,
    problems: list[ReportNote],
    passages: list[PassageCount] | None = None,
) -> Report:
    registry = src.registry
    ents = scope.registered(registry)
    rows = compliance.judge(read.items, read.post_shutdown, None if influx is None else influx[1])
    return Report(
        period=period_out(period, now),
        scope=scope.out(registry),
        generated_at=now.astimezone(BEIJING),
        anomalies=counts.count(read.found, read.case_of),
        top_enterprises=counts.top_enterprises(read.found, _names(registry), TOP),
        timeliness=timeliness(read.handled, now),
        transmission=None if influx is None else transmission(devices, influx[0], period, now),
        compliance=rows,
        compliance_counts=compliance.tally(rows),
        problems=problems,
        transport=None if passages is None else transport.use(ents, registry, passages),
    )


async def report(src: Sources, period: Period, scope: Scope, now: datetime) -> Report:
    """The report of `period` for `scope` as of `now`."""
    ents = scope.registered(src.registry)
    regime = ([*src.regime.list_alerts(), *src.regime.calendar()], src.regime.list_orders())
    read = await asyncio.to_thread(_read, src, period, scope, ents, regime, now)
    devices = list(_devices(ents))
    problems: list[ReportNote] = []
    influx = None
    if src.series is None:
        problems.append(note("influx_not_configured"))
    else:
        try:
            influx = await _stored(src.series, devices, read.items, period, now)
        except QueryError as exc:
            problems.append(note("influx_unreadable", str(exc)))
    passages = None
    if influx is not None and src.series is not None and period.kind == "month":
        gated = [e.id for e in ents if e.gates]
        try:  # heavy users and clean transport, from the gate records
            passages = await heavy_passages(src.series, gated, period.start, period.until(now))
        except QueryError as exc:
            problems.append(note("influx_unreadable", str(exc)))
        except Unsupported:
            pass  # the schema says null
    return await asyncio.to_thread(
        _figures, read, src, period, scope, now, devices, influx, problems, passages
    )


def _feedback(
    src: Sources, period: Period, scope: Scope, now: datetime, with_thresholds: bool
) -> Feedback:
    registry = src.registry
    with reading.source(src.cases) as db:
        handled_ = _handled(db, period, scope.enterprises)
    with reading.source(src.store) as db:
        type_of = reading.types_of(db, [i for h in handled_ for i in h.case.anomalies])
    judged = []
    for h in handled_:
        types = frozenset(type_of[i] for i in h.case.anomalies if i in type_of)
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


async def verdict_feedback(
    src: Sources, period: Period, scope: Scope, now: datetime, *, with_thresholds: bool
) -> Feedback:
    """The verdict feedback of the cases opened in `period` within `scope`; the list of
    types with a high false-alarm share (and their thresholds) when `with_thresholds`.
    Built in a worker thread."""
    return await asyncio.to_thread(_feedback, src, period, scope, now, with_thresholds)
