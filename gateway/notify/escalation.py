"""The escalation: finds the cases past their deadline (`case_overdue`) and those still 待签收
after `unsigned_after` (`case_unsigned`), and raises each notice once. The supervisor runs
`scan` at start and every `[notify] escalation_interval_s`.

Cases whose deadline passed (or that were opened) longer ago than the outbox remembers notices
(`REMEMBER`, 35 days, less a margin) are left alone, so none is told twice; a gateway stopped
for longer than that does not tell about them either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
PAGE = 500


def due(case: Case, now: datetime, unsigned_after: timedelta) -> list[NoticeEvent]:
    """What a case is to be told for now (pure)."""
    out: list[NoticeEvent] = []
    if case.overdue(now) and case.deadline is not None and now - case.deadline <= WINDOW:
        out.append("case_overdue")
    if unsigned_for(case, now, unsigned_after) and now - case.opened_at <= WINDOW:
        out.append("case_unsigned")
    return out


class Escalation:
    def __init__(
        self,
        cases: CaseStore,
        anomalies: AnomalyStore,
        registry: Callable[[], Registry],
        raise_notice: Callable[[Notice], None],
        known: Callable[[str], bool],
        *,
        unsigned_after: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
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
        raised: list[Notice] = []
        seen: set[int] = set()
        for case in (*self._cases(now, overdue=True), *self._cases(now, state="new")):
            if case.id in seen:
                continue
            seen.add(case.id)
            for kind in due(case, now, self.unsigned_after):
                nid = overdue_id(case) if kind == "case_overdue" else unsigned_id(case)
                if self.known(nid):
                    continue
                notice = case_notice(
                    kind, case, now, self._anomalies(case), self.registry(), self.unsigned_after
                )
                self.raise_notice(notice)
                raised.append(notice)
        return raised

    def _cases(
        self, now: datetime, *, overdue: bool | None = None, state: str | None = None
    ) -> Iterator[Case]:
        offset = 0
        while True:
            page, total = self.cases.query(
                now=now, overdue=overdue, state=state, limit=PAGE, offset=offset
            )
            yield from page
            offset += len(page)
            if not page or offset >= total:
                return

    def _anomalies(self, case: Case) -> list[Anomaly]:
        found = (self.anomalies.get(a) for a in case.anomalies)
        return [a for a in found if a is not None]
