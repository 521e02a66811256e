"""The escalation: finds the cases past their deadline (`case_overdue`) and the 报警 cases
still 待签收 and unanswered after `unsigned_after` (`case_unsigned`, see `notices`), and raises
each notice once. The supervisor runs it at start and every `[notify] escalation_interval_s`.

Cases whose deadline passed (or that were opened) longer ago than the outbox remembers notices
(`REMEMBER`, 35 days, less a margin) are left alone, so none is told twice; a gateway stopped
for longer than that does not tell about them either. The case store applies that window
itself (`CaseStore.overdue_or_unsigned`, through its state index): `candidates` is that read,
safe to run in a thread; `raise_due` then asks the outbox about all their notice ids in one
query and reads the cases and anomalies again only for the notices it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta

from ..anomalies.model import Anomaly
from ..anomalies.store import AnomalyStore
from ..cases.model import Case
from ..cases.store import CaseStore
from ..registry import Registry
from .config import NoticeEvent
from .notices import Notice, case_notice, overdue_id, unsigned_for, unsigned_id
from .outbox import REMEMBER

WINDOW = REMEMBER - timedelta(days=5)


def due(case: Case, now: datetime, unsigned_after: timedelta) -> list[NoticeEvent]:
    """What a case is to be told for now (pure)."""
    out: list[NoticeEvent] = []
    if case.overdue(now) and case.deadline is not None and now - case.deadline <= WINDOW:
        out.append("case_overdue")
    if unsigned_for(case, now, unsigned_after) and now - case.opened_at <= WINDOW:
        out.append("case_unsigned")
    return out


def due_ids(case: Case, now: datetime, unsigned_after: timedelta) -> dict[str, NoticeEvent]:
    """The ids of the notices a case is to be told for now, with their events (pure)."""
    return {
        overdue_id(case) if kind == "case_overdue" else unsigned_id(case): kind
        for kind in due(case, now, unsigned_after)
    }


class Escalation:
    def __init__(
        self,
        cases: CaseStore,
        anomalies: AnomalyStore,
        registry: Callable[[], Registry],
        raise_notice: Callable[[Notice], None],
        known: Callable[[Collection[str]], set[str]],
        *,
        unsigned_after: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        """`known` tells which of some notice ids were raised before (`Outbox.known_ids`)."""
        self.cases = cases
        self.anomalies = anomalies
        self.registry = registry
        self.raise_notice = raise_notice
        self.known = known
        self.unsigned_after = unsigned_after
        self.clock = clock

    def scan(self) -> list[Notice]:
        """Raise the notices due now and not raised before; those raised."""
        now = self.clock()
        return self.raise_due(now, self.candidates(now))

    def candidates(self, now: datetime) -> list[Case]:
        """The cases that may be due at `now`: one indexed read of the case store, under its
        lock, so it may run in a worker thread."""
        return self.cases.overdue_or_unsigned(
            now=now, since=now - WINDOW, unsigned_before=now - self.unsigned_after
        )

    def raise_due(self, now: datetime, cases: Sequence[Case]) -> list[Notice]:
        """Raise the notices of `cases` due at `now` and not raised before; those raised. A
        case changed since it was read (signed, a new deadline) is judged as it is now."""
        wanted: dict[str, tuple[Case, NoticeEvent]] = {}
        for case in cases:
            for nid, kind in due_ids(case, now, self.unsigned_after).items():
                wanted[nid] = (case, kind)
        raised: list[Notice] = []
        if not wanted:
            return raised
        seen = self.known(list(wanted))
        for nid, (case, kind) in wanted.items():
            if nid in seen:
                continue
            fresh = self.cases.get(case.id)
            if fresh is None or due_ids(fresh, now, self.unsigned_after).get(nid) != kind:
                continue  # changed meanwhile: the next scan sees it as it is
            notice = case_notice(
                kind, fresh, now, self._anomalies(fresh), self.registry(), self.unsigned_after
            )
            self.raise_notice(notice)
            raised.append(notice)
        return raised

    def _anomalies(self, case: Case) -> list[Anomaly]:
        found = (self.anomalies.get(a) for a in case.anomalies)
        return [a for a in found if a is not None]
