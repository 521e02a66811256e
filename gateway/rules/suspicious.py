"""`suspicious_data`: values an inspector would doubt, while the outlet's source runs.

Patterns, each tracked per series (a pollutant at one interval) on its records in event time:
- `constant`: the same non-zero value for [6 h] (outlet `constant_after_s`);
- `zeros`: 0 for [15 min] (outlet `zeros_after_s`);
- `flag_f`: flag F ("stopped") for [15 min] (outlet `zeros_after_s`).
O2 (`a19001`, 2005 `S01`) is not judged: it can legitimately sit still (air at 20.9 %).

One anomaly per outlet and pattern (subject `outlet:{enterprise}/{outlet}:{pattern}`): it opens
when a first series has held the pattern long enough, starts at the earliest start of the series
in it, and lists them all in `evidence["series"]` (codes in their 2017 form, with the code as
sent). Another series that holds long enough joins it; a series that breaks its pattern gets
its `until`; the anomaly closes when the last one breaks, or when the source stops.

"The source runs" is judged by `source_running`; records whose production is unknown are
not judged.

Emission records and meter readings come by different feeds with different lags, so a record of
an outlet with meters waits (bounded, [20000] records; past that the oldest are judged with the
meters' latest verdicts) until the production meters have reported up to its time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Enterprise, Outlet, Registry
from gateway.vocabulary import FLOWS, O2, canonical, describe

from .base import BaseRule, event_time
from .source_running import (
    Production,
    SourceRunning,
    WaitingRecords,
    production_meters,
    record_value,
)

PATTERNS = ("constant", "zeros", "flag_f")
WHAT = {
    "constant": "held the same value",
    "zeros": "reported 0",
    "flag_f": "reported flag F (stopped)",
}

Series = tuple[str, str]  # (2017 code, interval)
Run = tuple[datetime, object]  # (since, the value that holds)


@dataclass(frozen=True, slots=True)
class Record:
    """One emission record under judgement, with what the judgement needs."""

    ent: Enterprise
    outlet: Outlet
    series: Series
    code_sent: str
    at: datetime
    production: Production
    detected_at: datetime


class SuspiciousData(BaseRule):
    name = "suspicious_data"
    measurements = frozenset({"emission", "power"})

    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        constant_s: float = 6 * 3600.0,
        persist_s: float = 900.0,
        max_waiting: int = 20000,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.constant_s = constant_s
        self.persist_s = persist_s
        self.source = SourceRunning()
        self.runs: dict[str, dict[Series, Run]] = {}  # subject -> each series' current run
        self.waits = WaitingRecords(self.source, max_waiting)
        self.legacy: dict[tuple[str, Series], Anomaly] = {}  # open one-series anomalies

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Each record is judged against production at its own time: a record the production
        meters have not reported up to yet waits (with the later ones of its device) until
        they have, so the order in which the two feeds arrive does not matter. Each anomaly
        changed by these points is returned once, as it stands after them."""
        touched = self.source.meters.update(points)
        out: dict[str, Anomaly] = {}
        registry = self.registry()

        def judge(ent: Enterprise, outlet: Outlet, point: Point, producing: bool) -> None:
            self._judge(ent, outlet, point, Production(producing), detected_at, out)

        self.waits.release_touched(registry, touched, judge)
        records = []
        for point in sorted(points, key=lambda p: p.event_time_ns):
            if point.measurement != "emission":
                continue
            device = registry.device(point.tag("mn") or "")
            ent = registry.enterprise(device.enterprise) if device is not None else None
            if device is None or ent is None:
                continue
            by_meters = bool(production_meters(ent, device.outlet))
            code = canonical(point.tag("pollutant") or "", device.outlet.version)
            if not by_meters and code in FLOWS:
                self.source.keep_flow(device.outlet, point)
            if code != O2:
                records.append((ent, device.outlet, point, by_meters))
            elif self.legacy:  # O2 is no longer judged: its former anomalies end
                series = (code, point.tag("interval") or "")
                for pattern in PATTERNS:
                    subject = f"outlet:{ent.id}/{device.outlet.id}:{pattern}"
                    old = self.legacy.pop((subject, series), None)
                    if old is not None:
                        out[old.id] = _retired(old, event_time(point), carried=False)
        for ent, outlet, point, by_meters in records:
            if not by_meters:
                running = self.source.flowing(outlet, point)
                if running is not None:
                    self._judge(ent, outlet, point, running, detected_at, out)
                continue
            self.waits.add(ent.id, outlet.mn, point)
            self.waits.release(registry, outlet.mn, judge)
        self.waits.bound(registry, judge)
        return list(out.values())

    @property
    def waiting(self) -> int:
        """Records waiting for the production meters."""
        return self.waits.size

    def _judge(
        self,
        ent: Enterprise,
        outlet: Outlet,
        point: Point,
        production: Production,
        detected_at: datetime,
        out: dict[str, Anomaly],
    ) -> None:
        at = event_time(point)
        if not production.running:
            self._stop(ent, outlet, at, out)
            return
        value, flag = record_value(point), point.field("flag")
        code_sent = point.tag("pollutant") or ""
        series = (canonical(code_sent, outlet.version), point.tag("interval") or "")
        record = Record(ent, outlet, series, code_sent, at, production, detected_at)
        constant_s = outlet.constant_after_s or self.constant_s
        persist_s = outlet.zeros_after_s or self.persist_s
        checks = (
            ("constant", value if isinstance(value, float) and value != 0.0 else None, constant_s),
            ("zeros", 0.0 if value == 0.0 else None, persist_s),
            ("flag_f", "F" if flag == "F" else None, persist_s),
        )
        for pattern, key, needed_s in checks:
            subject = f"outlet:{ent.id}/{outlet.id}:{pattern}"
            old = self.legacy.pop((subject, series), None) if self.legacy else None
            if old is not None:
                out[old.id] = old  # closed below, once this record is judged
            runs = self.runs.setdefault(subject, {})
            run = runs.get(series)
            if key is None or (run is not None and run[1] != key):
                if key is None:
                    runs.pop(series, None)
                else:
                    runs[series] = (at, key)  # a new value starts a new run
                self._leave(subject, series, at, out)
            elif run is None:
                runs[series] = (at, key)
            elif (at - run[0]).total_seconds() >= needed_s:
                self._join(record, subject, run, needed_s, out)
            if old is not None:
                carried = series in _holding(self.open.get(subject))
                out[old.id] = _retired(old, at, carried=carried)

    def _join(
        self, record: Record, subject: str, run: Run, needed_s: float, out: dict[str, Anomaly]
    ) -> None:
        """A series that has held its pattern long enough: open the outlet's anomaly with it,
        or add it to the open one."""
        current = self.open.get(subject)
        series, outlet, at = record.series, record.outlet, record.at
        if series in _holding(current):
            return
        since, key = run
        entry = {
            "pollutant": series[0],
            "code_sent": record.code_sent,
            "interval": series[1],
            "value": key,
            "since": since.isoformat(),
            "until": None,
        }
        before = [s for s in current.evidence["series"] if _series(s) != series] if current else []
        entries = [*before, entry]
        started = min(since, current.started_at) if current else since
        pattern = subject.rpartition(":")[2]
        evidence = {
            "pattern": pattern,
            "outlet": outlet.id,
            "mn": outlet.mn,
            "pollutants": sorted({s["pollutant"] for s in entries}),
            "series": entries,
            "threshold_s": needed_s,
            "lines": outlet.lines,
            **self.source.evidence(record.ent, outlet, record.production, at),
        }
        summary = _summary(outlet, pattern, entries, started, record.production.flow is None)
        if current is None:
            anomaly = Anomaly(
                type="suspicious_data",
                severity="warning",
                enterprise=record.ent.id,
                subject=subject,
                started_at=started,
                summary=summary,
                evidence=evidence,
                rule=self.name,
                detected_at=record.detected_at,
                as_of=at,
            )
        else:
            later = current.updated(max(at, current.judged_until), summary, **evidence)
            anomaly = replace(later, started_at=started)
        self.open[subject] = out[anomaly.id] = anomaly

    def _leave(self, subject: str, series: Series, at: datetime, out: dict[str, Anomaly]) -> None:
        """A series breaks its pattern: its `until` is set; the anomaly closes with the last."""
        current = self.open.get(subject)
        if series not in _holding(current):
            return
        assert current is not None
        entries = [
            {**s, "until": at.isoformat()} if _series(s) == series and s["until"] is None else s
            for s in current.evidence["series"]
        ]
        if any(s["until"] is None for s in entries):
            anomaly = current.updated(max(at, current.judged_until), series=entries)
            self.open[subject] = out[anomaly.id] = anomaly
            return
        ended = max(datetime.fromisoformat(s["until"]) for s in entries)
        del self.open[subject]
        out[current.id] = current.closed(
            ended, summary=f"{current.summary} Ended {ended:%Y-%m-%d %H:%M} UTC.", series=entries
        )

    def _stop(self, ent: Enterprise, outlet: Outlet, at: datetime, out: dict[str, Anomaly]) -> None:
        """The source stopped: every run at the outlet ends, its anomalies close at `at`."""
        for pattern in PATTERNS:
            subject = f"outlet:{ent.id}/{outlet.id}:{pattern}"
            for key in [k for k in self.legacy if k[0] == subject]:
                old = self.legacy.pop(key)
                out[old.id] = _retired(old, at, carried=False)
            self.runs.pop(subject, None)
            current = self.open.pop(subject, None)
            if current is None:
                continue
            entries = [
                {**s, "until": at.isoformat()} if s["until"] is None else s
                for s in current.evidence["series"]
            ]
            out[current.id] = current.closed(
                at,
                summary=f"{current.summary} The source stopped at {at:%Y-%m-%d %H:%M} UTC.",
                series=entries,
            )

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        """Rebuild the open anomalies and the runs of their series that still hold; an open
        anomaly of the former one-series form is closed at its series' next record."""
        for anomaly in open_anomalies:
            evidence = anomaly.evidence
            if "series" in evidence:
                self.open[anomaly.subject] = anomaly
                runs = self.runs.setdefault(anomaly.subject, {})
                for s in evidence["series"]:
                    if s["until"] is None:
                        runs[_series(s)] = (datetime.fromisoformat(s["since"]), s["value"])
                continue
            if not {"pattern", "pollutant", "interval", "since", "value"} <= evidence.keys():
                continue
            ent_outlet = anomaly.subject.partition(":")[2].split("/")[:2]
            subject = f"outlet:{'/'.join(ent_outlet)}:{evidence['pattern']}"
            series = (canonical(evidence["pollutant"]), evidence["interval"])
            self.legacy[(subject, series)] = anomaly
            since = datetime.fromisoformat(evidence["since"])
            self.runs.setdefault(subject, {})[series] = (since, evidence["value"])


def _series(entry: dict[str, Any]) -> Series:
    return (entry["pollutant"], entry["interval"])


def _holding(anomaly: Anomaly | None) -> set[Series]:
    if anomaly is None:
        return set()
    return {_series(s) for s in anomaly.evidence["series"] if s["until"] is None}


def _retired(old: Anomaly, at: datetime, *, carried: bool) -> Anomaly:
    """A former one-series anomaly closed at `at`: ended, or carried on by its outlet's."""
    note = "Carried on in the outlet's anomaly from" if carried else "Ended"
    return old.closed(at, summary=f"{old.summary} {note} {at:%Y-%m-%d %H:%M} UTC.")


def _summary(
    outlet: Outlet, pattern: str, entries: list[dict[str, Any]], since: datetime, meters: bool
) -> str:
    codes = sorted({s["pollutant"] for s in entries})
    names = [f"{c.name_en} ({c.code})" if (c := describe(code, "2017")) else code for code in codes]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    verb = "has" if len(names) == 1 else "have each"
    runs = "production runs" if meters else "its flow shows the source running"
    return (
        f"At outlet {outlet.id}, {listed} {verb} {WHAT[pattern]} since "
        f"{since:%Y-%m-%d %H:%M} UTC while {runs}."
    )
