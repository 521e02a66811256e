"""Stored values for charts: the series that explain an anomaly (`/api/v1/anomalies/{id}/series`)
and one outlet's or meter's values (`/api/v1/series`), read from InfluxDB. Which series explain
each type of anomaly is decided in `gateway.anomalies.explain`; this module parses parameters,
reads and answers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_args

import structlog
from fastapi import APIRouter, HTTPException, Query, status

from gateway.anomalies.explain import (
    MAX_SERIES,
    MAX_WINDOW,
    Explainer,
    Wanted,
    emission_look,
    meter_look,
)
from gateway.influx.reader import QueryError, Series, SeriesQuery, TagValue

from .auth import Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .lang import Language
from .schemas import (
    AnomalySeries,
    EmissionField,
    Interval,
    PowerField,
    Problem,
    QueryTime,
    SeriesOut,
    SeriesPage,
    Window,
)

log = structlog.get_logger("gateway.api")

NOTHING_TO_CHART = "no values to chart for this type"
NOTHING_STORED = "no values stored in this window"
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)  # what InfluxDB's nanosecond times can hold
LATEST = datetime(2262, 1, 1, tzinfo=UTC)

QUERY_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"model": Problem, "description": "InfluxDB refused the query"},
    503: {"model": Problem, "description": "InfluxDB is unreachable, or not configured"},
}
MaxPoints = Annotated[
    int, Query(ge=10, le=5000, description="per series; longer windows are averaged")
]

_POWER_FIELDS = frozenset(get_args(PowerField))


def _assemble(wanted: Sequence[Wanted], results: Sequence[list[Series]]) -> list[SeriesOut]:
    out: list[SeriesOut] = []
    at = 0
    for item in wanted:
        found = results[at : at + len(item.alternatives)]
        at += len(item.alternatives)
        index = next((i for i, r in enumerate(found) if any(s.points for s in r)), 0)
        query, describe = item.alternatives[index]
        chosen = found[index]
        if not chosen and query.group_by is None:
            chosen = [Series("")]  # shown empty: the officer sees what was looked for
        for series in chosen:
            look = describe(series.group)
            if look is None or len(out) >= MAX_SERIES:
                continue
            tags = {k: v for k, v in query.tags.items() if isinstance(v, str)}
            if query.group_by is not None:
                tags[query.group_by] = series.group
            out.append(
                SeriesOut(
                    label=look.label,
                    measurement="power" if query.measurement == "power" else "emission",
                    tags=tags,
                    field=query.field,
                    unit=look.unit,
                    points=series.points,
                    bucket_s=series.bucket_s,
                    limit=look.limit,
                    limit_label=look.limit_label,
                )
            )
    return out


async def _read(svc: Services, queries: Sequence[SeriesQuery]) -> list[list[Series]]:
    if svc.series is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "no InfluxDB is configured to read from"
        )
    try:
        return await svc.series.read(queries)
    except QueryError as exc:
        log.warning("series query failed", error=str(exc))
        code = (
            status.HTTP_503_SERVICE_UNAVAILABLE if exc.unreachable else status.HTTP_502_BAD_GATEWAY
        )
        raise HTTPException(code, str(exc)) from None


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["series"],
        responses={**READ_ERRORS, **QUERY_ERRORS},
    )

    @router.get(
        "/anomalies/{anomaly_id}/series",
        summary="The stored values that explain an anomaly, around it",
        responses=NOT_FOUND,
    )
    async def anomaly_series(
        anomaly_id: str,
        caller: Reader,
        lang: Language,
        max_points: MaxPoints = 600,
    ) -> AnomalySeries:
        anomaly = svc.anomaly(anomaly_id, caller)
        explainer = Explainer(anomaly, svc.registry(), max_points, lang)
        wanted = explainer.wanted()
        series: list[SeriesOut] = []
        if wanted:
            queries = [q for w in wanted for q, _ in w.alternatives]
            series = _assemble(wanted, await _read(svc, queries))
        note = None
        if not wanted:
            note = NOTHING_TO_CHART
        elif not any(s.points for s in series):
            note = NOTHING_STORED
        return AnomalySeries(
            anomaly_id=anomaly.id,
            type=anomaly.type,
            enterprise=anomaly.enterprise,
            subject=anomaly.subject,
            started_at=anomaly.started_at,
            ended_at=anomaly.ended_at,
            as_of=anomaly.as_of,
            window=Window(start=explainer.start, end=explainer.end),
            series=series,
            note=note,
        )

    @router.get(
        "/series",
        summary="One outlet's pollutant or one meter's values",
        responses={
            **NOT_FOUND,
            400: {"model": Problem, "description": "the parameters do not name one series"},
        },
    )
    async def series(
        caller: Reader,
        lang: Language,
        enterprise: str,
        outlet: Annotated[str | None, Query(description="an outlet id (with pollutant)")] = None,
        pollutant: Annotated[
            str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="code as sent")
        ] = None,
        interval: Interval = "hour",
        meter: Annotated[str | None, Query(description="a meter id (instead of outlet)")] = None,
        field: Annotated[
            EmissionField | PowerField | None,
            Query(description="default: `avg` (`rtd` for real-time values), `p_kw` for meters"),
        ] = None,
        start: Annotated[
            QueryTime | None,
            Query(description="ISO 8601, default `end` - 24 h (no offset: Beijing time)"),
        ] = None,
        end: Annotated[
            QueryTime | None, Query(description="ISO 8601, exclusive, default now")
        ] = None,
        max_points: MaxPoints = 600,
    ) -> SeriesPage:
        def bad(detail: str) -> HTTPException:
            return HTTPException(status.HTTP_400_BAD_REQUEST, detail)

        if (outlet is None) == (meter is None):
            raise bad("name either an outlet (with pollutant) or a meter")
        until = (end or svc.clock()).astimezone(UTC)
        if not EARLIEST + timedelta(hours=24) <= until <= LATEST:
            raise bad(f"times lie between {EARLIEST:%Y} and {LATEST:%Y}")
        since = start.astimezone(UTC) if start else until - timedelta(hours=24)
        if since < EARLIEST:
            raise bad(f"times lie between {EARLIEST:%Y} and {LATEST:%Y}")
        if since >= until:
            raise bad("start must come before end")
        if until - since > MAX_WINDOW:
            raise bad(f"at most {MAX_WINDOW.days} days at a time")
        ent = svc.enterprise(enterprise, caller)
        registry = svc.registry()
        tags: dict[str, TagValue] = {"enterprise": enterprise}
        if meter is not None:
            found = registry.meter(enterprise, meter)
            if found is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"no meter {meter!r} at {enterprise}"
                )
            chosen = field or "p_kw"
            if chosen not in _POWER_FIELDS:
                raise bad(f"a meter has no field {chosen!r}")
            tags["meter"] = meter
            measurement, look = "power", meter_look(found, meter, chosen, lang)
        else:
            assert outlet is not None
            place = next((o for o in ent.outlets if o.id == outlet), None)
            if place is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"no outlet {outlet!r} at {enterprise}"
                )
            if pollutant is None:
                raise bad("an outlet's series needs a pollutant")
            chosen = field or ("rtd" if interval == "rtd" else "avg")
            if chosen in _POWER_FIELDS:
                raise bad(f"an outlet has no field {chosen!r}")
            tags |= {"outlet": outlet, "pollutant": pollutant, "interval": interval}
            measurement, look = (
                "emission",
                emission_look(outlet, pollutant, interval, chosen, place, lang),
            )
        query = SeriesQuery(measurement, chosen, tags, since, until, max_points)
        return SeriesPage(
            window=Window(start=since, end=until),
            series=_assemble([Wanted.one(query, look)], await _read(svc, [query])),
        )

    return router


def route_functions(svc: Services) -> dict[str, Any]:
    """The functions of this module's routes by name (`anomaly_series`, `series`), for routes
    that answer the same values in another format: called, or declared as a dependency, they
    take the same parameters, make the same checks and raise the same errors."""
    from fastapi.routing import APIRoute

    return {r.name: r.endpoint for r in build_router(svc).routes if isinstance(r, APIRoute)}
