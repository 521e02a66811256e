"""Make-up of staggered production (补齐错峰) by heating-duty lines, from stored power data.

A heating-duty line is exempt from a 错峰 period (a stop schedule with `make_up_days`), but
every Beijing day it ran within the period is owed, to be made up by days stopped within
`make_up_days` after the period's end. A line ran on a day when one of its production meters
stored a `p_kw` (an hour's mean, for long windows) at or above its `on_threshold_kw`; it was
stopped on a day when its meters stored power that day and none of it reached the threshold
(a day without data proves nothing either way). The period is the latest one begun by now.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from gateway.influx.reader import SeriesQuery, SeriesReader
from gateway.plans import covers
from gateway.registry import Enterprise, Line, Schedule
from gateway.schedules import BEIJING, DAY, midnight, spans

HOUR = timedelta(hours=1)


def latest_period(schedule: Schedule, today: date) -> tuple[date, date] | None:
    """[first day, day after the last) of the latest span begun by `today`."""
    begun = [s for s in spans(schedule, range(today.year - 1, today.year + 1)) if s[0] <= today]
    return begun[-1] if begun else None


def tally(
    ran: dict[date, bool], period: tuple[date, date], make_up_days: int, today: date
) -> dict[str, Any]:
    """The accounting of one line from `ran` (Beijing day -> ran that day, for the days with
    data): days ran in the period, days stopped after it within the make-up span (as many as
    are owed), and what is still owed."""
    start, end = period
    until = end + timedelta(days=make_up_days)
    days_ran = sum(1 for d, running in ran.items() if start <= d < end and running)
    stopped = sum(1 for d, running in ran.items() if end <= d < until and not running)
    made_up = min(stopped, days_ran)
    return {
        "period": [start.isoformat(), (end - DAY).isoformat()],
        "make_up_until": (until - DAY).isoformat(),
        "days_ran": days_ran,
        "days_made_up": made_up,
        "still_owed": days_ran - made_up,
        "final": today >= until,
    }


def owing(ent: Enterprise) -> list[tuple[Schedule, Line]]:
    """The (错峰 period, heating-duty line) pairs of `ent` that make-up is counted for."""
    return [
        (schedule, line)
        for schedule in ent.all_schedules()
        if schedule.make_up_days is not None
        for line in ent.lines
        if line.heating_duty and covers(schedule, line.id)
    ]


async def make_up(reader: SeriesReader, ent: Enterprise, now: datetime) -> list[dict[str, Any]]:
    """The make-up accounting of each heating-duty line of `ent` under each 错峰 period, as of
    `now`; raises QueryError when InfluxDB cannot be read."""
    today = now.astimezone(BEIJING).date()
    jobs = []
    for schedule, line in owing(ent):
        period = latest_period(schedule, today)
        meters = {
            m.id: m.on_threshold_kw
            for m in ent.meters
            if m.role == "production" and m.line == line.id
        }
        if period is None or schedule.make_up_days is None or not meters:
            continue
        start = midnight(period[0])
        end = min(midnight(period[1] + timedelta(days=schedule.make_up_days)), now)
        if end <= start:
            continue
        query = SeriesQuery(
            "power",
            "p_kw",
            {"enterprise": ent.id, "meter": tuple(sorted(meters))},
            start,
            end,
            max_points=max(1, int((end - start) / HOUR)),
            group_by="meter",
        )
        jobs.append((schedule, line, period, meters, query))
    found = await reader.read([job[4] for job in jobs]) if jobs else []
    out = []
    for (schedule, line, period, meters, _), series in zip(jobs, found, strict=True):
        ran: dict[date, bool] = {}
        for s in series:
            threshold = meters.get(s.group, 0.0)
            for at, kw in s.points:
                day = at.astimezone(BEIJING).date()
                ran[day] = ran.get(day, False) or kw >= threshold
        assert schedule.make_up_days is not None
        out.append(
            {
                "schedule": schedule.name,
                "line": line.id,
                **tally(ran, period, schedule.make_up_days, today),
            }
        )
    return out
