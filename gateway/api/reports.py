"""`/api/v1/reports`: the daily and monthly reports and the verdict feedback (see
`gateway.reports` and its README for how each figure is counted), served when the app is
given a case store. JSON, or `format=csv`: one CSV file for Excel (UTF-8 with a BOM, Chinese
headers unless `lang=en`, Beijing time).

Every figure holds only the enterprises of the caller's scope (`region` and `enterprise`
narrow it; an enterprise outside it is 404). The reports take any account; the feedback an
officer or admin, and only an admin gets the list of types with a high false-alarm share
and the thresholds they use.
"""

# No `from __future__ import annotations` here: FastAPI evaluates these annotations.

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from ..accounts import Caller
from ..reports import build, sheet
from ..reports.model import Feedback, Report
from ..reports.period import Period, parse_day, parse_month
from .auth import Officer, Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .lang import Language
from .schemas import Problem

CSV_MEDIA = "text/csv; charset=utf-8"

Day = Annotated[
    str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="a Beijing day, `YYYY-MM-DD`")
]
Month = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="a Beijing month, `YYYY-MM`")]
Region = Annotated[
    str | None,
    Query(max_length=200, description="a region id: its enterprises and those under it"),
]
EnterpriseId = Annotated[
    str | None, Query(max_length=200, description="one enterprise of the caller's scope")
]
Format = Annotated[
    Literal["json", "csv"], Query(description="`csv`: one CSV file of every table, for Excel")
]

ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    400: {"model": Problem, "description": "not a day or month, or one that has not begun"},
}


def _csv(description: str, model: type[Report] | type[Feedback]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
            CSV_MEDIA: {"schema": {"type": "string"}},
        },
    }


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(prefix="/api/v1/reports", tags=["reports"], responses=READ_ERRORS)

    def sources() -> build.Sources:
        assert svc.cases is not None  # the router is included with a case store only
        return build.Sources(svc.store, svc.cases, svc.regime, svc.registry(), svc.series)

    def scope(caller: Caller, region: str | None, enterprise: str | None) -> build.Scope:
        ents = svc.scope(caller, region)
        if enterprise is not None:
            svc.enterprise(enterprise, caller)  # 404 outside the scope
            ents = frozenset({enterprise}) if ents is None else ents & {enterprise}
        return build.Scope(ents, region, enterprise)

    def period(parse: Callable[[str], Period], text: str) -> Period:
        try:
            found = parse(text)
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        if found.start > svc.clock():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{text} has not begun")
        return found

    def csv(body: bytes, name: str) -> Response:
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type=CSV_MEDIA, headers=disposition)

    async def answer(
        caller: Caller,
        found: Period,
        region: str | None,
        enterprise: str | None,
        format_: str,
        lang: str,
    ) -> Report | Response:
        now = svc.clock()
        report = await build.report(sources(), found, scope(caller, region, enterprise), now)
        if format_ == "csv":
            kind = "daily" if found.kind == "day" else "monthly"
            body = sheet.report_csv(report, "en" if lang == "en" else "zh")
            return csv(body, f"report-{kind}-{found.label}.csv")
        return report

    @router.get(
        "/daily",
        summary="The report of one Beijing day",
        description="Anomalies that started that day by type, state, case state and verdict; "
        "the enterprises with the most (alarms first); the handling of the cases opened that "
        "day; each device's transmission rate (hourly records / hours ended); compliance "
        "with the alerts and orders in force. Counts as of the request.",
        response_model=Report,
        responses={200: _csv("the report (JSON), or CSV with `format=csv`", Report), **ERRORS},
    )
    async def daily(
        caller: Reader,
        lang: Language,
        day: Day,
        region: Region = None,
        enterprise: EnterpriseId = None,
        format: Format = "json",
    ) -> Report | Response:
        return await answer(caller, period(parse_day, day), region, enterprise, format, lang)

    @router.get(
        "/monthly",
        summary="The report of one Beijing month",
        description="As the daily report, over the month.",
        response_model=Report,
        responses={200: _csv("the report (JSON), or CSV with `format=csv`", Report), **ERRORS},
    )
    async def monthly(
        caller: Reader,
        lang: Language,
        month: Month,
        region: Region = None,
        enterprise: EnterpriseId = None,
        format: Format = "json",
    ) -> Report | Response:
        return await answer(caller, period(parse_month, month), region, enterprise, format, lang)

    @router.get(
        "/feedback",
        summary="How officers judged the cases of each anomaly type in one month",
        description="Per type, and per type and region: cases opened in the month, verdicts, "
        "the shares of 属实 / 误报 / 设备故障, median hours to sign and to close, overdue "
        "cases. For an admin, also the types whose 误报 share is high, with the thresholds "
        "the registry sets for them. Officers and admins.",
        response_model=Feedback,
        responses={
            200: _csv("the feedback (JSON), or CSV with `format=csv`", Feedback),
            403: {"model": Problem, "description": "the officer role is required"},
            **ERRORS,
        },
    )
    async def verdicts(
        caller: Officer,
        lang: Language,
        month: Month,
        region: Region = None,
        enterprise: EnterpriseId = None,
        format: Format = "json",
    ) -> Feedback | Response:
        found = period(parse_month, month)
        fb = await build.verdict_feedback(
            sources(),
            found,
            scope(caller, region, enterprise),
            svc.clock(),
            with_thresholds=caller.at_least("admin"),
        )
        if format == "csv":
            body = sheet.feedback_csv(fb, "en" if lang == "en" else "zh")
            return csv(body, f"feedback-{found.label}.csv")
        return fb

    return router
