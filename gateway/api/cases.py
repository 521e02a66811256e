"""`/api/v1/cases`: the handling of anomalies that need action (see `gateway.cases.model` for
the states and who may do what), served when the app is given a case store.

Reading takes any account and shows only the cases whose enterprise it sees; outside its
scope a case does not exist (404). Each action is `POST /api/v1/cases/{id}/{action}` with a
JSON body of its details: 403 when the caller's role may not take it (or, for an enterprise
account, the case is not its own enterprise's), 409 when the case's state does not allow it,
400 when the details do not fit (a deadline already past). `answer` takes an enterprise
account, or an officer or admin who records it on the enterprise's behalf; the others take an
officer or admin. Every change writes one audit entry, `case.<action>`, with the case before
and after it, in the change's transaction.
"""

# No `from __future__ import annotations` here: FastAPI evaluates these annotations.

from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ..accounts import Caller
from ..cases.model import (
    ACTION_LABELS,
    LEVEL_LABELS,
    STATE_LABELS,
    TRANSITIONS,
    VERDICT_LABELS,
    Action,
    BadDetails,
    Case,
    Conflict,
    Forbidden,
    Level,
    State,
    Verdict,
    beijing_day,
    case_json,
)
from ..cases.store import CaseStore, Step
from .audit import record
from .auth import Officer, Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .lang import Language
from .schemas import AnomalyOut, Problem, QueryTime

MAX_OFFSET = 1_000_000_000
MAX_ID = 2**53
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="the case's number")]
Note = Annotated[str | None, Field(max_length=2000, description="a remark for the history")]
Deadline = Annotated[QueryTime, Field(description="ISO 8601 (no offset: Beijing time)")]
Assignee = Annotated[
    str, Field(min_length=1, max_length=200, description="an officer's name or a team")
]
Link = Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)]

ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    **NOT_FOUND,
    400: {"model": Problem, "description": "not valid JSON, or details that do not fit"},
    403: {"model": Problem, "description": "the account's role may not take this action"},
    409: {
        "model": Problem,
        "description": "the case's state does not allow the action (join: the anomaly is in a"
        " case already, or of another enterprise or day)",
    },
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignIn(_Body):
    note: Note = None


class AssignIn(_Body):
    assignee: Assignee
    deadline: Deadline
    note: Note = None


class AnswerIn(_Body):
    text: str = Field(min_length=1, max_length=10_000, description="the enterprise's account")
    attachments: list[Link] = Field([], max_length=20, description="links to documents")


class VerifyIn(_Body):
    verdict: Verdict
    note: str = Field(min_length=1, max_length=2000)


class CloseIn(_Body):
    note: Note = None


class ReopenIn(_Body):
    reason: str = Field(min_length=1, max_length=2000)
    assignee: Assignee | None = None
    deadline: Deadline | None = None


class JoinIn(_Body):
    anomaly_id: str = Field(
        min_length=1, max_length=200, description="an anomaly of the case's enterprise and day"
    )


class AnswerOut(BaseModel):
    text: str
    attachments: list[str]
    by: str = Field(description="the account that gave or recorded it")
    at: datetime
    on_behalf: bool = Field(description="recorded by an officer or admin for the enterprise")


class FindingOut(BaseModel):
    verdict: Verdict
    verdict_label: str = Field(description="e.g. 属实, 设备故障")
    note: str
    by: str
    at: datetime


class CaseOut(BaseModel):
    id: int
    enterprise: str = Field(description='"" for anomalies of no enterprise')
    enterprise_name: str | None = Field(description="the registry's name; null when unknown")
    day: date = Field(description="the Beijing day of its anomalies")
    state: State
    state_label: str = Field(description="e.g. 待签收, 核查中")
    level: Level = Field(
        description="warning (预警: the enterprise's to answer) or alarm (报警: the bureau's);"
        " the highest severity of its anomalies"
    )
    level_label: str = Field(description="预警 or 报警")
    anomalies: list[str] = Field(description="anomaly ids, in the order they joined")
    opened_at: datetime
    updated_at: datetime
    signed_by: str | None
    assignee: str | None
    deadline: datetime | None
    overdue: bool = Field(description="past its deadline and neither verified nor closed")
    answer: AnswerOut | None
    finding: FindingOut | None = Field(description="the verdict; null until verified")
    reopened: int = Field(description="how many times it was reopened")
    actions: list[Action] = Field(description="what the caller may do with it now")


class StepOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_role: str = Field(description="the account's role; system for the gateway")
    action: str = Field(
        description="open, join, escalate (to an alarm), sign, assign, answer, verify, close,"
        " reopen"
    )
    action_label: str = Field(description="e.g. 立案, 签收")
    from_state: State | None = Field(description="null for the opening")
    to_state: State
    details: dict[str, Any]


class CaseDetail(CaseOut):
    history: list[StepOut] = Field(description="every change, oldest first")
    anomaly_items: list[AnomalyOut] = Field(description="the case's anomalies in full")


class CasePage(BaseModel):
    items: list[CaseOut] = Field(description="newest first")
    total: int = Field(description="cases matching the filters")
    limit: int
    offset: int


def may(case: Case, caller: Caller) -> list[Action]:
    """The actions the caller may take on the case in its state."""
    own = caller.role != "enterprise" or case.enterprise in caller.enterprises
    return [
        a
        for a, t in TRANSITIONS.items()
        if own and caller.role in t.roles and case.state in t.from_states
    ]


def build_router(svc: Services) -> APIRouter:
    if svc.cases is None:
        raise ValueError("the cases router needs a case store")
    cases: CaseStore = svc.cases
    router = APIRouter(prefix="/api/v1", tags=["cases"])

    def out(case: Case, caller: Caller) -> dict[str, Any]:
        ent = svc.registry().enterprise(case.enterprise)
        body = case_json(case)
        if case.finding is not None:
            body["finding"]["verdict_label"] = VERDICT_LABELS[case.finding.verdict]
        return {
            **body,
            "enterprise_name": ent.name if ent is not None else None,
            "state_label": STATE_LABELS[case.state],
            "level_label": LEVEL_LABELS[case.level],
            "overdue": case.overdue(svc.clock()),
            "actions": may(case, caller),
        }

    def visible(case_id: int, caller: Caller) -> Case:
        case = cases.get(case_id)
        if case is None or not svc.sees(caller, case.enterprise):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}")
        return case

    def act(
        case_id: int, action: Action, caller: Caller, request: Request, details: dict[str, Any]
    ) -> CaseOut:
        visible(case_id, caller)

        def audit(before: Case, after: Case) -> None:
            record(
                svc,
                caller,
                request,
                f"case.{action}",
                target=str(case_id),
                before=case_json(before),
                after=case_json(after),
                reason=details.get("reason") or details.get("note"),
            )

        given = {k: v for k, v in details.items() if v not in (None, "")}  # "": not given
        try:
            after = cases.act(case_id, action, caller, svc.clock(), given, audit)
        except Forbidden as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
        except Conflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except BadDetails as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        if after is None:  # gone since it was read: cannot happen, as nothing erases
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}")
        return CaseOut.model_validate(out(after, caller))

    @router.get("/cases", responses=READ_ERRORS, summary="Cases, newest first")
    async def list_cases(
        caller: Reader,
        state: State | None = None,
        level: Annotated[
            Level | None, Query(description="warning: the enterprises' 预警; alarm: 报警")
        ] = None,
        enterprise: Annotated[str | None, Query(max_length=200)] = None,
        assignee: Annotated[str | None, Query(max_length=200)] = None,
        overdue: Annotated[
            bool | None, Query(description="true: only overdue cases; false: none of them")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> CasePage:
        """Only the cases whose enterprise the caller sees."""
        items, total = cases.query(
            now=svc.clock(),
            state=state,
            level=level,
            enterprise=enterprise,
            enterprises=svc.visible(caller),
            assignee=assignee,
            overdue=overdue,
            limit=limit,
            offset=offset,
        )
        shown = [CaseOut.model_validate(out(c, caller)) for c in items]
        return CasePage(items=shown, total=total, limit=limit, offset=offset)

    @router.get(
        "/cases/{case_id}",
        responses={**READ_ERRORS, **NOT_FOUND},
        summary="One case, with its history and its anomalies",
    )
    async def get_case(case_id: CaseId, caller: Reader, lang: Language) -> CaseDetail:
        case = visible(case_id, caller)
        registry = svc.registry()
        anomalies = [a for a in map(svc.store.get, case.anomalies) if a is not None]
        return CaseDetail.model_validate(
            {
                **out(case, caller),
                "history": [_step(s) for s in cases.history(case_id)],
                "anomaly_items": [AnomalyOut.of(a, lang, registry) for a in anomalies],
            }
        )

    @router.get(
        "/anomalies/{anomaly_id}/case",
        responses={**READ_ERRORS, **NOT_FOUND},
        summary="The case of an anomaly",
    )
    async def case_of_anomaly(anomaly_id: str, caller: Reader) -> CaseOut:
        """404 when the anomaly lies outside the scope or has no case."""
        svc.anomaly(anomaly_id, caller)
        case = cases.case_of(anomaly_id)
        if case is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"anomaly {anomaly_id!r} has no case")
        return CaseOut.model_validate(out(case, caller))

    def action_route(action: Action, summary: str) -> Callable[[Any], Any]:
        label = ACTION_LABELS[action]
        return router.post(
            f"/cases/{{case_id}}/{action}", responses=ACTION_ERRORS, summary=f"{summary} ({label})"
        )

    @action_route("sign", "Sign for a new case (officer)")
    async def sign(
        case_id: CaseId, caller: Officer, request: Request, body: SignIn | None = None
    ) -> CaseOut:
        return act(case_id, "sign", caller, request, (body or SignIn()).model_dump())

    @action_route("assign", "Assign for checking, with a deadline (officer)")
    async def assign(case_id: CaseId, caller: Officer, request: Request, body: AssignIn) -> CaseOut:
        """Also reassigns a case in checking, or sets a new deadline."""
        return act(case_id, "assign", caller, request, body.model_dump())

    @action_route("answer", "The enterprise's explanation (its account, or an officer for it)")
    async def answer(case_id: CaseId, caller: Reader, request: Request, body: AnswerIn) -> CaseOut:
        """An enterprise account answers its own enterprises' cases, from the moment they
        open (a 预警 before it becomes an alarm: the state stays until the check starts); an
        officer or admin may record an answer given otherwise (`on_behalf`). A later answer
        supersedes, and the history keeps, an earlier one."""
        return act(case_id, "answer", caller, request, body.model_dump())

    @action_route("verify", "The verdict of the check, with a note (officer)")
    async def verify(case_id: CaseId, caller: Officer, request: Request, body: VerifyIn) -> CaseOut:
        return act(case_id, "verify", caller, request, body.model_dump())

    @action_route("close", "Close a verified case (officer)")
    async def close(
        case_id: CaseId, caller: Officer, request: Request, body: CloseIn | None = None
    ) -> CaseOut:
        return act(case_id, "close", caller, request, (body or CloseIn()).model_dump())

    @action_route("reopen", "Back to checking, with a reason (officer)")
    async def reopen(case_id: CaseId, caller: Officer, request: Request, body: ReopenIn) -> CaseOut:
        """Clears the verdict (the history keeps it); keeps the assignee and deadline unless
        new ones are given: past its old deadline the case is overdue at once."""
        return act(case_id, "reopen", caller, request, body.model_dump())

    @action_route("join", "Join another anomaly of the same enterprise and day (officer)")
    async def join(case_id: CaseId, caller: Officer, request: Request, body: JoinIn) -> CaseOut:
        """404 when the anomaly lies outside the scope; 409 when it is in a case already or
        belongs to another enterprise or day."""
        visible(case_id, caller)
        anomaly = svc.anomaly(body.anomaly_id, caller)
        details = {
            "anomaly_id": anomaly.id,
            "enterprise": anomaly.enterprise,
            "day": beijing_day(anomaly.started_at),
            "level": anomaly.severity,
        }
        return act(case_id, "join", caller, request, details)

    return router


def _step(step: Step) -> StepOut:
    label = ACTION_LABELS.get(step.action, step.action)
    return StepOut.model_validate({**asdict(step), "action_label": label})
