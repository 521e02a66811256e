"""`/api/v1/anomalies`: the anomaly list with filters and paging, and one anomaly by id."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from .auth import Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .lang import Language
from .schemas import AnomalyFamily, AnomalyOut, AnomalyPage, AnomalyType, QueryTime

MAX_OFFSET = 1_000_000_000


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/anomalies",
        tags=["anomalies"],
        responses=READ_ERRORS,
    )

    @router.get("", summary="Anomalies, newest first")
    async def list_anomalies(
        caller: Reader,
        lang: Language,
        enterprise: str | None = None,
        region: Annotated[
            str | None, Query(description="a region id: its enterprises and those under it")
        ] = None,
        type_: Annotated[AnomalyType | None, Query(alias="type")] = None,
        family: AnomalyFamily | None = None,
        state: Literal["open", "closed"] | None = None,
        since: Annotated[
            QueryTime | None,
            Query(
                description="ISO 8601; anomalies still going on at or after it (no offset: "
                "Beijing time)"
            ),
        ] = None,
        until: Annotated[
            QueryTime | None,
            Query(
                description="ISO 8601; anomalies started at or before it (no offset: Beijing time)"
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AnomalyPage:
        last_seq = svc.store.last_seq()  # before the query: the stream resumes from it
        items, total = svc.store.query(
            enterprise=enterprise,
            enterprises=svc.scope(caller, region),
            type_=type_,
            family=family,
            state=state,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return AnomalyPage(
            items=[AnomalyOut.of(a, lang, svc.registry()) for a in items],
            total=total,
            limit=limit,
            offset=offset,
            last_seq=last_seq,
        )

    @router.get("/{anomaly_id}", summary="One anomaly", responses=NOT_FOUND)
    async def get_anomaly(anomaly_id: str, caller: Reader, lang: Language) -> AnomalyOut:
        return AnomalyOut.of(svc.anomaly(anomaly_id, caller), lang, svc.registry())

    return router
