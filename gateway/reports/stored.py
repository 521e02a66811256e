"""What the reports read from InfluxDB, through the API's `SeriesReader` (InfluxQL on 1.x and
3.x, Flux on 2.x): the hours of each device's hourly records, and which enterprises stored
anything in a window. Queries name at most `CHUNK` devices or enterprises each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ..influx.reader import SeriesQuery, SeriesReader

CHUNK = 50
HOUR = timedelta(hours=1)


def _chunks(items: Sequence[str]) -> list[tuple[str, ...]]:
    ordered = sorted(set(items))
    return [tuple(ordered[i : i + CHUNK]) for i in range(0, len(ordered), CHUNK)]


async def hourly_times(
    reader: SeriesReader, mns: Sequence[str], start: datetime, until: datetime
) -> dict[str, list[datetime]]:
    """MN -> times of its `emission` points with `interval=hour` and an `avg` in
    `[start, until)`. A device's pollutants share an hour: with `max_points` set to the
    window's hours, more points than hours come back as one mean per hour (its start), so
    every hour with a record is there either way."""
    if not mns or until <= start:
        return {}
    hours = max(1, int((until - start) / HOUR))
    queries = [
        SeriesQuery(
            "emission",
            "avg",
            {"interval": "hour", "mn": chunk},
            start,
            until,
            max_points=hours,
            group_by="mn",
        )
        for chunk in _chunks(mns)
    ]
    out: dict[str, list[datetime]] = {}
    for found in await reader.read(queries):
        for series in found:
            out.setdefault(series.group, []).extend(t for t, _ in series.points)
    return out


async def enterprises_with_data(
    reader: SeriesReader, enterprises: Sequence[str], start: datetime, end: datetime
) -> set[str]:
    """The enterprises of `enterprises` whose devices stored something in `[start, end)`: an
    `emission` mean (`avg`, any interval) or a meter's `p_kw`."""
    if not enterprises or end <= start:
        return set()
    queries = [
        SeriesQuery(measurement, field, {"enterprise": chunk}, start, end, 1, "enterprise")
        for measurement, field in (("emission", "avg"), ("power", "p_kw"))
        for chunk in _chunks(enterprises)
    ]
    return {
        series.group for found in await reader.read(queries) for series in found if series.points
    }
