"""`/api/v1/anomaly-types`: every anomaly type with its family and default severity, from the
one list in `gateway.anomalies.types`; `/api/v1/labels`: what people read for the types,
families, severities, states and evidence keys and values, in the language asked (the page
builds its filters and evidence tables from it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ..anomalies.messages import TIME_NOTE, labels
from ..anomalies.types import TYPES
from .deps import READ_ERRORS, Services
from .lang import Language


class AnomalyTypeOut(BaseModel):
    type: str
    family: str
    severity: str
    rule: str
    charted: bool


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["anomalies"],
        dependencies=[Depends(svc.auth.reader)],
        responses=READ_ERRORS,
    )

    @router.get("/anomaly-types", summary="Anomaly types, in the order rules are run")
    async def anomaly_types() -> list[AnomalyTypeOut]:
        return [
            AnomalyTypeOut(
                type=t.name,
                family=t.family,
                severity=t.severity,
                rule=t.rule,
                charted=t.chart is not None,
            )
            for t in TYPES
        ]

    @router.get("/labels", summary="Labels for people, in the language asked")
    async def all_labels(lang: Language) -> dict[str, Any]:
        return {**labels(lang), "time_note": TIME_NOTE[lang]}

    return router
