"""Anomaly figures of a period (pure): which anomalies belong to it, their counts by type,
state, severity, case state and verdict, and the enterprises with the most."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..anomalies.model import Anomaly
from ..anomalies.types import TYPES
from ..cases.model import STATES, VERDICTS, Case
from .model import AnomalyCounts, CaseStateCount, EnterpriseCount, TypeCount, VerdictCount
from .period import Period

NO_CASE = "none"


def started_in(anomalies: Iterable[Anomaly], period: Period) -> list[Anomaly]:
    """The anomalies that started in the period: each belongs to one day and one month."""
    return [a for a in anomalies if period.contains(a.started_at)]


def count(anomalies: Sequence[Anomaly], case_of: Mapping[str, Case]) -> AnomalyCounts:
    """Counts of `anomalies` (state and severity as they are now); `case_of` maps an anomaly
    id to its case (anomalies without one are missing from it)."""
    by_type: dict[str, Counter[str]] = {t.name: Counter() for t in TYPES}
    case_states: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    for a in anomalies:
        tally = by_type.setdefault(a.type, Counter())
        tally["total"] += 1
        tally[a.state] += 1
        tally[a.severity] += 1
        case = case_of.get(a.id)
        case_states[case.state if case is not None else NO_CASE] += 1
        if case is not None and case.finding is not None:
            verdicts[case.finding.verdict] += 1
    family = {t.name: t.family for t in TYPES}
    rows = [
        TypeCount(
            type=name,
            family=family.get(name, ""),
            total=c["total"],
            open=c["open"],
            closed=c["closed"],
            alarm=c["alarm"],
            warning=c["warning"],
        )
        for name, c in by_type.items()
    ]
    states = Counter(a.state for a in anomalies)
    severities = Counter(a.severity for a in anomalies)
    return AnomalyCounts(
        total=len(anomalies),
        open=states["open"],
        closed=states["closed"],
        alarm=severities["alarm"],
        warning=severities["warning"],
        by_type=rows,
        by_case_state=[CaseStateCount(state=s, count=case_states[s]) for s in (NO_CASE, *STATES)],
        by_verdict=[VerdictCount(verdict=v, count=verdicts[v]) for v in VERDICTS],
    )


def top_enterprises(
    anomalies: Iterable[Anomaly], names: Mapping[str, str], n: int = 10
) -> list[EnterpriseCount]:
    """The `n` enterprises with the most alarms, then the most anomalies (then by id);
    anomalies of no enterprise (unregistered devices) are left out."""
    tallies: dict[str, Counter[str]] = {}
    for a in anomalies:
        if a.enterprise:
            tally = tallies.setdefault(a.enterprise, Counter())
            tally["total"] += 1
            tally[a.severity] += 1
            tally[a.state] += 1
    ranked = sorted(tallies.items(), key=lambda kv: (-kv[1]["alarm"], -kv[1]["total"], kv[0]))
    return [
        EnterpriseCount(
            enterprise=ent,
            name=names.get(ent, ""),
            total=c["total"],
            alarm=c["alarm"],
            warning=c["warning"],
            open=c["open"],
        )
        for ent, c in ranked[:n]
    ]
