"""`/api/v1/anomaly-types`: every anomaly type with its family and default severity, from the
one list in `gateway.anomalies.types`; `/api/v1/labels`: what people read for the types,
families, severities, states and evidence keys and values, and (under `case`) the states,
actions and verdicts of cases, in the language asked (the page builds its filters, evidence
tables and case panel from it); `/api/v1/me`: who the caller is, so the page knows its role."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..accounts import Role
from ..anomalies.messages import TIME_NOTE, labels
from ..anomalies.types import TYPES
from ..cases.model import ACTION_LABELS, LEVEL_LABELS, STATE_LABELS, VERDICT_LABELS
from .auth import Reader
from .deps import READ_ERRORS, Services
from .lang import Lang, Language

# The English of `gateway.cases.model`'s (Chinese) label tables, key for key
_CASE_EN: dict[str, dict[str, str]] = {
    "state": {
        "new": "to sign for",
        "signed": "signed for",
        "checking": "checking",
        "answered": "answered by the enterprise",
        "verified": "verified",
        "closed": "closed",
    },
    "action": {
        "open": "opened",
        "sign": "sign for",
        "assign": "assign for checking",
        "answer": "enterprise's answer",
        "verify": "verify",
        "close": "close",
        "reopen": "reopen",
        "join": "join",
        "escalate": "raised to an alarm",
    },
    "level": {"warning": "warning (the enterprise's)", "alarm": "alarm (the bureau's)"},
    "verdict": {
        "confirmed": "confirmed",
        "device_fault": "device fault",
        "normal_operation": "normal operation",
        "false_alarm": "false alarm",
        "other": "other",
    },
}
_CASE_ZH: dict[str, dict[str, str]] = {
    "state": {str(k): v for k, v in STATE_LABELS.items()},
    "action": dict(ACTION_LABELS),
    "verdict": {str(k): v for k, v in VERDICT_LABELS.items()},
    "level": {str(k): v for k, v in LEVEL_LABELS.items()},
}
assert all(_CASE_EN[k].keys() == _CASE_ZH[k].keys() for k in _CASE_ZH), "case labels differ"


def case_labels(lang: Lang) -> dict[str, dict[str, str]]:
    """The case's state, action, verdict and level labels: {"state": {"new": "待签收"}, ...}."""
    return {k: dict(v) for k, v in (_CASE_EN if lang == "en" else _CASE_ZH).items()}


class AnomalyTypeOut(BaseModel):
    type: str
    family: str
    severity: str
    rule: str
    charted: bool


class MeOut(BaseModel):
    name: str = Field(description="the account's name")
    display_name: str = Field(description='what people read for it; "" when none is set')
    role: Role = Field(description="enterprise, viewer, officer or admin")


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
        return {**labels(lang), "time_note": TIME_NOTE[lang], "case": case_labels(lang)}

    @router.get("/me", tags=["accounts"], summary="The calling account: its name and role")
    async def me(caller: Reader) -> MeOut:
        """What the page shows for the caller and which case actions it offers."""
        return MeOut(name=caller.name, display_name=caller.display_name, role=caller.role)

    return router
