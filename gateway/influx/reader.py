"""Reading series back from InfluxDB, with the connection settings the gateway writes with.

- 1.x: InfluxQL over ``GET /query`` (aiohttp); every value is a bind parameter (``params``).
- 2.x: Flux through influxdb-client's async query API; values are passed as ``extern`` options.
- 3.x: InfluxQL over the v1-compatible ``GET /query`` with ``Authorization: Token`` and the
  bucket as ``db``; values are inlined as escaped string literals, because bind parameters on
  that endpoint are not available in every 3.x edition.

Measurement, field and tag names are identifiers checked against ``[A-Za-z_][A-Za-z0-9_]*``.
A read opens one connection pool, runs its queries concurrently under one timeout and closes
it. Results are bounded: a series of more than `max_points` stored values is read again as
means per time bucket.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp

from gateway.model import from_ns

QUERY_TIMEOUT_S = 10.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
_BUCKETS_S: tuple[int, ...] = (1, 2, 5, 10, 15, 30, _MINUTE, 2 * _MINUTE, 5 * _MINUTE)
_BUCKETS_S += (10 * _MINUTE, 15 * _MINUTE, 30 * _MINUTE, _HOUR, 2 * _HOUR, 3 * _HOUR, 6 * _HOUR)
_BUCKETS_S += (12 * _HOUR, _DAY, 2 * _DAY, 7 * _DAY)

TagValue = str | tuple[str, ...]  # a tuple matches any of its values


class QueryError(Exception):
    """InfluxDB could not be read: `unreachable` (down, timed out, 5xx) or it refused the query."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """One field of one measurement where the tags match, in ``[start, end)``."""

    measurement: str
    field: str
    tags: Mapping[str, TagValue]
    start: datetime
    end: datetime
    max_points: int = 1000
    group_by: str | None = None  # one series per value of this tag

    def __post_init__(self) -> None:
        names = [self.measurement, self.field, *self.tags]
        if self.group_by is not None:
            names.append(self.group_by)
        for name in names:
            if not _IDENT.match(name):
                raise ValueError(f"not an identifier: {name!r}")
        if any(isinstance(v, tuple) and not v for v in self.tags.values()):
            raise ValueError("a tag matches at least one value")
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError("start and end need offsets, and end comes after start")
        if self.max_points < 1:
            raise ValueError("max_points must be at least 1")


@dataclass(frozen=True, slots=True)
class Series:
    """The values of one series, oldest first. `bucket_s` is None for the stored values, else
    the points are means per bucket of that many seconds (each at its bucket's start)."""

    group: str  # the value of the query's group_by tag ("" without one)
    points: list[tuple[datetime, float]] = field(default_factory=list)
    bucket_s: int | None = None


class SeriesReader(Protocol):
    async def read(self, queries: Sequence[SeriesQuery]) -> list[list[Series]]:
        """The series of each query, in order; raises QueryError."""
        ...


def bucket_seconds(query: SeriesQuery) -> int:
    """The smallest round bucket that keeps the window within `max_points` buckets."""
    needed = math.ceil((query.end - query.start).total_seconds() / query.max_points)
    return next((b for b in _BUCKETS_S if b >= needed), needed)


Select = Callable[[SeriesQuery, int | None], Awaitable[list[Series]]]


async def _bounded(select: Select, query: SeriesQuery) -> list[Series]:
    found = await select(query, None)
    if all(len(s.points) <= query.max_points for s in found):
        return found
    bucket = bucket_seconds(query)
    return [
        Series(s.group, s.points[-query.max_points :], bucket) for s in await select(query, bucket)
    ]


async def _run(
    select: Select, queries: Sequence[SeriesQuery], timeout_s: float
) -> list[list[Series]]:
    late = QueryError(f"InfluxDB did not answer within {timeout_s:g} s", unreachable=True)
    try:
        async with asyncio.timeout(timeout_s):
            found = await asyncio.gather(
                *(_bounded(select, q) for q in queries), return_exceptions=True
            )
    except TimeoutError:
        raise late from None
    out: list[list[Series]] = []
    for item in found:
        if isinstance(item, TimeoutError):
            raise late
        if isinstance(item, aiohttp.ClientError | OSError):
            raise QueryError(f"InfluxDB is unreachable: {item}", unreachable=True)
        if isinstance(item, BaseException):
            raise item
        out.append(item)
    return out


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quoted_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql(
    query: SeriesQuery,
    bucket_s: int | None,
    placeholder: Callable[[str, str], str],
    retention_policy: str | None = None,
) -> str:
    """The InfluxQL statement; `placeholder(name, value)` gives the text standing for a value
    (``$name`` with bind parameters)."""
    conditions = []
    for i, (key, value) in enumerate(sorted(query.tags.items())):
        values = (value,) if isinstance(value, str) else value
        alternatives = [
            f"{_quoted_ident(key)} = {placeholder(f't{i}_{j}', v)}" for j, v in enumerate(values)
        ]
        joined = " OR ".join(alternatives)
        conditions.append(joined if len(alternatives) == 1 else f"({joined})")
    start = placeholder("start", _rfc3339(query.start))
    end = placeholder("end", _rfc3339(query.end))
    conditions.append(f"time >= {start} AND time < {end}")
    source = _quoted_ident(query.measurement)
    if retention_policy:
        source = f"{_quoted_ident(retention_policy)}.{source}"
    group = [_quoted_ident(query.group_by)] if query.group_by else []
    if bucket_s is None:
        selected = _quoted_ident(query.field)
        tail = ""
    else:
        selected = f"mean({_quoted_ident(query.field)})"
        group.insert(0, f"time({bucket_s}s)")
        tail = " fill(none)"
    text = f"SELECT {selected} FROM {source} WHERE {' AND '.join(conditions)}"
    if group:
        text += " GROUP BY " + ", ".join(group)
    return text + f"{tail} LIMIT {query.max_points + 1}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class InfluxQLReader:
    """InfluxQL over ``GET /query``: 1.x with bind parameters (and basic auth when configured);
    3.x through its v1-compatible endpoint with a token and inlined literals."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        bind_parameters: bool = True,
        timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.auth = aiohttp.BasicAuth(username, password or "") if username else None
        self.headers = {"Authorization": f"Token {token}"} if token else {}
        self.bind_parameters = bind_parameters
        self.timeout_s = timeout_s

    async def read(self, queries: Sequence[SeriesQuery]) -> list[list[Series]]:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(
            timeout=timeout, auth=self.auth, headers=self.headers
        ) as session:

            async def select(query: SeriesQuery, bucket_s: int | None) -> list[Series]:
                return await self._select(session, query, bucket_s)

            return await _run(select, queries, self.timeout_s)

    def statement(self, query: SeriesQuery, bucket_s: int | None) -> tuple[str, dict[str, str]]:
        """The statement and its bind parameters (none when values are inlined)."""
        params: dict[str, str] = {}

        def placeholder(name: str, value: str) -> str:
            if not self.bind_parameters:
                return _string_literal(value)
            params[name] = value
            return f"${name}"

        return influxql(query, bucket_s, placeholder, self.retention_policy), params

    async def _select(
        self, session: aiohttp.ClientSession, query: SeriesQuery, bucket_s: int | None
    ) -> list[Series]:
        text, params = self.statement(query, bucket_s)
        return self._parse(await self.query_json(session, text, params), query)

    async def query_json(
        self, session: aiohttp.ClientSession, text: str, params: dict[str, str]
    ) -> Any:
        """One InfluxQL statement (with its bind parameters) and InfluxDB's JSON answer;
        QueryError when it answers an HTTP error or something other than JSON."""
        request = {"db": self.database, "q": text, "epoch": "ns"}
        if params:
            request["params"] = json.dumps(params)
        async with session.get(f"{self.url}/query", params=request) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise QueryError(
                    f"InfluxDB answered HTTP {resp.status}: {body[:300]}",
                    unreachable=resp.status >= 500,
                )
        try:
            return json.loads(body)
        except ValueError:
            raise QueryError(
                "InfluxDB answered something other than JSON", unreachable=False
            ) from None

    @staticmethod
    def _parse(answer: Any, query: SeriesQuery) -> list[Series]:
        results = answer.get("results") if isinstance(answer, dict) else None
        result = results[0] if isinstance(results, list) and results else {}
        if not isinstance(result, dict):
            raise QueryError("InfluxDB answered an unexpected document", unreachable=False)
        error = result.get("error")
        if error:
            if str(error).startswith("database not found"):
                return []  # nothing written yet
            raise QueryError(f"InfluxDB refused the query: {error}", unreachable=False)
        out = []
        for series in result.get("series") or []:
            group = (series.get("tags") or {}).get(query.group_by, "") if query.group_by else ""
            points = []
            for row in series.get("values") or []:
                value = _number(row[1]) if len(row) > 1 else None
                if isinstance(row[0], int) and value is not None:
                    points.append((from_ns(row[0]), value))
            out.append(Series(str(group), points))
        return sorted(out, key=lambda s: s.group)


class FluxReader:
    """Flux through influxdb-client's async query API (InfluxDB 2.x)."""

    def __init__(
        self, url: str, *, org: str, bucket: str, token: str, timeout_s: float = QUERY_TIMEOUT_S
    ) -> None:
        self.url = url
        self.org = org
        self.bucket = bucket
        self.token = token
        self.timeout_s = timeout_s

    async def read(self, queries: Sequence[SeriesQuery]) -> list[list[Series]]:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        client: Any = InfluxDBClientAsync(
            url=self.url, token=self.token, org=self.org, timeout=int(self.timeout_s * 1000)
        )
        try:
            api = client.query_api()

            async def select(query: SeriesQuery, bucket_s: int | None) -> list[Series]:
                return await self._select(api, query, bucket_s)

            return await _run(select, queries, self.timeout_s)
        finally:
            await client.close()

    def statement(self, query: SeriesQuery, bucket_s: int | None) -> tuple[str, dict[str, Any]]:
        """The Flux script and its parameters (``option`` statements sent as ``extern``)."""
        params: dict[str, Any] = {
            "p_bucket": self.bucket,
            "p_start": query.start.astimezone(UTC),
            "p_stop": query.end.astimezone(UTC),
            "p_measurement": query.measurement,
            "p_field": query.field,
        }
        conditions = ["r._measurement == p_measurement", "r._field == p_field"]
        for i, (key, value) in enumerate(sorted(query.tags.items())):
            values = (value,) if isinstance(value, str) else value
            alternatives = []
            for j, v in enumerate(values):
                params[f"p_t{i}_{j}"] = v
                alternatives.append(f"r.{key} == p_t{i}_{j}")
            joined = " or ".join(alternatives)
            conditions.append(joined if len(alternatives) == 1 else f"({joined})")
        group = f'"{query.group_by}"' if query.group_by else ""
        lines = [
            "from(bucket: p_bucket)",
            "  |> range(start: p_start, stop: p_stop)",
            f"  |> filter(fn: (r) => {' and '.join(conditions)})",
            f"  |> group(columns: [{group}])",
        ]
        if bucket_s is not None:
            params["p_every"] = timedelta(seconds=bucket_s)
            lines.append(
                "  |> aggregateWindow(every: p_every, fn: mean, createEmpty: false,"
                ' timeSrc: "_start")'
            )
        lines += ['  |> sort(columns: ["_time"])', f"  |> limit(n: {query.max_points + 1})"]
        return "\n".join(lines), params

    async def _select(self, api: Any, query: SeriesQuery, bucket_s: int | None) -> list[Series]:
        from influxdb_client.rest import ApiException

        text, params = self.statement(query, bucket_s)
        try:
            tables = await api.query(text, params=params)
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 404:
                return []  # no such bucket yet
            raise QueryError(
                f"InfluxDB answered HTTP {status}: {str(exc.body or exc.reason)[:300]}",
                unreachable=status >= 500 or status == 0,
            ) from None
        groups: dict[str, list[tuple[datetime, float]]] = {}
        for table in tables:
            for record in table.records:
                moment, value = record.get_time(), _number(record.get_value())
                if not isinstance(moment, datetime) or value is None:
                    continue
                group = str(record.values.get(query.group_by, "")) if query.group_by else ""
                groups.setdefault(group, []).append((moment, value))
        return [Series(g, sorted(p)) for g, p in sorted(groups.items())]
