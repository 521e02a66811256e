"""Heavy-vehicle passages as InfluxDB holds them (`vehicle_passage`, class `heavy`): counted
per enterprise, Beijing day, direction, emission stage and fuel, by one InfluxQL `count` per
`CHUNK` enterprises. The charts' `SeriesReader` returns numeric values only (a passage's
fields are text and a bool), so this counts with an InfluxQL statement of its own, sent like
`InfluxQLReader`'s (1.x with bind parameters, 3.x with inlined literals) over the reader's
own settings. Any other reader (2.x, Flux) is not counted: `Unsupported`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp

from ..influx.reader import InfluxQLReader, QueryError, SeriesReader
from ..model import from_ns
from .period import BEIJING

CHUNK = 50
_TAGS = ("enterprise", "direction", "emission_stage", "fuel")


class Unsupported(Exception):
    """The reader is not one that takes InfluxQL."""


@dataclass(frozen=True, slots=True)
class PassageCount:
    """Heavy-vehicle passages of one enterprise on one Beijing day, of one kind."""

    enterprise: str
    day: date
    direction: str
    stage: str
    fuel: str
    count: int


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def statement(
    reader: InfluxQLReader, enterprises: Sequence[str], start: datetime, end: datetime
) -> tuple[str, dict[str, str]]:
    """The InfluxQL count and its bind parameters (none when the reader inlines values)."""
    params: dict[str, str] = {}

    def value(name: str, text: str) -> str:
        if not reader.bind_parameters:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        params[name] = text
        return f"${name}"

    ents = " OR ".join(f'"enterprise" = {value(f"e{i}", e)}' for i, e in enumerate(enterprises))
    since = value("start", start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    until = value("end", end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    source = _quoted("vehicle_passage")
    if reader.retention_policy:
        source = f"{_quoted(reader.retention_policy)}.{source}"
    # days of Beijing time: buckets of 1 d starting 16:00 UTC
    text = (
        f'SELECT count("plate") FROM {source} WHERE ({ents}) '
        f'AND "vehicle_class" = {value("cls", "heavy")} AND time >= {since} AND time < {until} '
        f"GROUP BY time(1d, 16h), {', '.join(_quoted(t) for t in _TAGS)} fill(none)"
    )
    return text, params


def _parse(answer: Any) -> list[PassageCount]:
    results = answer.get("results") if isinstance(answer, dict) else None
    result = results[0] if isinstance(results, list) and results else {}
    error = result.get("error") if isinstance(result, dict) else "an unexpected document"
    if error:
        if str(error).startswith("database not found"):
            return []
        raise QueryError(f"InfluxDB refused the query: {error}", unreachable=False)
    out = []
    for series in result.get("series") or []:
        tags = series.get("tags") or {}
        for row in series.get("values") or []:
            if len(row) < 2 or not isinstance(row[0], int) or not isinstance(row[1], int):
                continue
            ent, direction, stage, fuel = (str(tags.get(t, "")) for t in _TAGS)
            day = from_ns(row[0]).astimezone(BEIJING).date()
            out.append(PassageCount(ent, day, direction, stage, fuel, row[1]))
    return out


async def heavy_passages(
    reader: SeriesReader, enterprises: Sequence[str], start: datetime, end: datetime
) -> list[PassageCount]:
    """Heavy-vehicle passages of `enterprises` in `[start, end)`, per Beijing day and kind.
    Raises QueryError when InfluxDB cannot be read, Unsupported for a non-InfluxQL reader."""
    if not isinstance(reader, InfluxQLReader):
        raise Unsupported(type(reader).__name__)
    ordered = sorted(set(enterprises))
    if not ordered or end <= start:
        return []
    out: list[PassageCount] = []
    timeout = aiohttp.ClientTimeout(total=reader.timeout_s)
    try:
        async with aiohttp.ClientSession(
            timeout=timeout, auth=reader.auth, headers=reader.headers
        ) as session:
            for i in range(0, len(ordered), CHUNK):
                text, params = statement(reader, ordered[i : i + CHUNK], start, end)
                out += _parse(await reader.query_json(session, text, params))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise QueryError(f"InfluxDB is unreachable: {exc}", unreachable=True) from None
    return out


def beijing_day(day: date) -> tuple[datetime, datetime]:
    """The window of a Beijing day."""
    start = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
    return start, start + timedelta(days=1)
