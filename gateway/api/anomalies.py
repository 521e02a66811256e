"""`/api/v1/anomalies`: the anomaly list with filters and paging, and one anomaly by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from .auth import Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .filters import Filters
from .lang import Language
from .schemas import AnomalyOut, AnomalyPage

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
        filters: Filters,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AnomalyPage:
        last_seq = svc.store.last_seq()  # before the query: the stream resumes from it
        items, total = svc.store.query(
            **filters.store_args(svc, caller), limit=limit, offset=offset
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
