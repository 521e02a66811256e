"""When a recurring schedule is in force (Beijing time): its window at an instant, its edges
before an instant (latest first), and its yearly spans.

A schedule's days are those of its `months`, or of its yearly `from`/`to` span (both days
included; a span whose end comes before its start runs into the next year), or every day.
Without `hours` a window is the whole run of such days; with `hours` each listed daily window
of such a day is one (a window past midnight belongs to the day it starts on).
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.registry import Schedule, month_day, quiet_window

BEIJING = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)
HORIZON_DAYS = 400  # how far back daily edges are looked for

Run = tuple[tuple[int, int], tuple[int, int]]  # first (month, day), last (month, day or 0: end)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), BEIJING)


def _runs(schedule: Schedule) -> list[Run]:
    """Its days as yearly runs; empty when every day is one of them."""
    if schedule.from_ is not None and schedule.to is not None:
        return [(month_day(schedule.from_), month_day(schedule.to))]
    months = sorted(set(schedule.months))
    if not months:
        return []
    if len(months) == 12:
        return [((1, 1), (12, 0))]
    runs: list[list[int]] = []
    for month in months:
        if runs and runs[-1][-1] == month - 1:
            runs[-1].append(month)
        else:
            runs.append([month])
    if len(runs) > 1 and runs[0][0] == 1 and runs[-1][-1] == 12:  # December runs into January
        runs[0] = runs.pop() + runs[0]
    return [((run[0], 1), (run[-1], 0)) for run in runs]


def _last(year: int, month_day_: tuple[int, int]) -> date:
    month, day = month_day_
    return date(year, month, day or calendar.monthrange(year, month)[1])


def spans(schedule: Schedule, years: range) -> list[tuple[date, date]]:
    """[first day, day after the last) of each run starting in `years`, earliest first."""
    out = []
    for year in years:
        for first, last in _runs(schedule):
            start = date(year, *first)
            wraps = (last[0], last[1] or 31) < first  # ends in the next year
            out.append((start, _last(year + wraps, last) + DAY))
    return sorted(out)


def _span_of(schedule: Schedule, day: date) -> tuple[date, date] | None:
    """The run of its days holding `day`, or None; every day alone when it has no runs."""
    if not _runs(schedule):
        return day, day + DAY
    for start, end in spans(schedule, range(day.year - 1, day.year + 1)):
        if start <= day < end:
            return start, end
    return None


def _daily(schedule: Schedule, day: date) -> list[tuple[datetime, datetime]]:
    """Its `hours` windows starting on `day`, when `day` is one of its days."""
    if _span_of(schedule, day) is None:
        return []
    out = []
    for text in schedule.hours:
        start_min, end_min = quiet_window(text)
        start = midnight(day) + timedelta(minutes=start_min)
        end = midnight(day) + timedelta(minutes=end_min)
        out.append((start, end + DAY if end_min < start_min else end))
    return out


def window_at(schedule: Schedule, at: datetime) -> tuple[datetime, datetime] | None:
    """[start, end) of its window holding `at`, or None when it is not in force."""
    today = at.astimezone(BEIJING).date()
    if not schedule.hours:
        span = _span_of(schedule, today)
        return None if span is None else (midnight(span[0]), midnight(span[1]))
    for day in (today, today - DAY):
        for start, end in _daily(schedule, day):
            if start <= at < end:
                return start, end
    return None


def edges_before(schedule: Schedule, at: datetime) -> Iterator[datetime]:
    """Where it comes into or goes out of force, at or before `at`, latest first."""
    today = at.astimezone(BEIJING).date()
    if not schedule.hours:
        found = [
            midnight(t)
            for span in spans(schedule, range(today.year - 2, today.year + 1))
            for t in span
            if midnight(t) <= at
        ]
        yield from sorted(set(found), reverse=True)
        return
    heap: list[tuple[float, datetime]] = []
    day = today
    for _ in range(HORIZON_DAYS):
        latest_earlier = midnight(day + 2 * DAY)  # no window of `day` or before ends later
        while heap and -heap[0][0] >= latest_earlier.timestamp():
            yield heapq.heappop(heap)[1]
        for window in _daily(schedule, day):
            for edge in window:
                if edge <= at:
                    heapq.heappush(heap, (-edge.timestamp(), edge))
        day -= DAY
    while heap:
        yield heapq.heappop(heap)[1]
