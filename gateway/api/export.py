"""Exports for enforcement: the anomaly list and one series as CSV files Excel opens as they
are (UTF-8 with a BOM, Chinese column headers, Beijing time), and the evidence pack of one
anomaly as a ZIP (the anomaly, its history, the series that explain it as CSV and as a chart,
and a printable one-page summary in Chinese). `?lang=en` gives English headers and labels.

- `GET /api/v1/export/anomalies.csv`: the filters of the anomaly list, newest first, at most
  `MAX_ROWS` rows (`X-Truncated: true` when more match; `X-Total-Count` says how many).
- `GET /api/v1/export/series.csv`: the parameters, checks and errors of `/api/v1/series`.
- `GET /api/v1/anomalies/{id}/evidence.zip`: when InfluxDB cannot be read, the pack comes
  without series and says why.

Text cells that Excel would read as a formula (`=`, `+`, `-`, `@` first) get a leading `'`.
"""

# No `from __future__ import annotations`: the series routes are declared as dependencies by
# local names, which FastAPI resolves from the annotations.

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from starlette.responses import StreamingResponse

from ..archive import excerpt as archive_excerpt
from . import series as series_routes
from . import svg
from .auth import Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .evidence_pack import Pack, evidence_zip
from .export_csv import BOM, _csv, anomaly_row, series_csv
from .export_wording import _HEADERS, _NOTES, _TEXTS, _labels
from .filters import Filters
from .lang import Language
from .schemas import (
    BEIJING,
    AnomalySeries,
    Problem,
    SeriesPage,
)

MAX_ROWS = 100_000  # rows of one anomaly export
PAGE_ROWS = 1000  # read from the store at a time
CSV_MEDIA = "text/csv; charset=utf-8"
ZIP_MEDIA = "application/zip"

# -- file names -------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y%m%d-%H%M")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:64] or "_"


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


# -- routes -----------------------------------------------------------------------------------


def _csv_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {CSV_MEDIA: {"schema": {"type": "string"}}},
        "headers": {
            "Content-Disposition": {
                "description": '`attachment; filename="..."`',
                "schema": {"type": "string"},
            },
            **(headers or {}),
        },
    }
    return out


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["export"], responses=READ_ERRORS)
    routes = series_routes.route_functions(svc)
    series_route = routes["series"]
    anomaly_series_route = routes["anomaly_series"]

    @router.get(
        "/export/anomalies.csv",
        summary="The anomaly list as CSV for Excel, newest first",
        response_class=Response,
        responses={
            200: _csv_response(
                "UTF-8 with a BOM; column headers in Chinese (`lang=en`: English); times in "
                f"Beijing time `yyyy-MM-dd HH:mm:ss`. At most {MAX_ROWS} rows.",
                {
                    "X-Truncated": {
                        "description": f"`true` when more than {MAX_ROWS} anomalies match: "
                        "the file holds the newest; narrow the filters for the others",
                        "schema": {"type": "string", "enum": ["true"]},
                    },
                    "X-Total-Count": {
                        "description": "anomalies matching the filters",
                        "schema": {"type": "integer"},
                    },
                },
            )
        },
    )
    async def anomalies_csv(
        caller: Reader,
        lang: Language,
        filters: Filters,
    ) -> StreamingResponse:
        registry = svc.registry()
        labels = _labels()
        query = filters.store_args(svc, caller)
        first, total = svc.store.query(**query, limit=PAGE_ROWS, offset=0)

        async def body() -> AsyncIterator[bytes]:
            yield (BOM + _csv([_HEADERS[lang]["anomalies"]])).encode("utf-8")
            seen: set[str] = set()  # rows recorded meanwhile shift the pages: no row twice
            page, offset = first, 0
            while page and len(seen) < MAX_ROWS:
                fresh = [a for a in page if a.id not in seen][: MAX_ROWS - len(seen)]
                seen.update(a.id for a in fresh)
                yield _csv(anomaly_row(a, registry, labels, lang) for a in fresh).encode("utf-8")
                if len(page) < PAGE_ROWS:
                    return
                offset += len(page)
                await asyncio.sleep(0)
                page, _ = svc.store.query(**query, limit=PAGE_ROWS, offset=offset)

        headers = {
            **_attachment(f"anomalies-{_stamp(svc.clock())}.csv"),
            "X-Total-Count": str(total),
        }
        if total > MAX_ROWS:
            headers["X-Truncated"] = "true"
        return StreamingResponse(body(), media_type=CSV_MEDIA, headers=headers)

    @router.get(
        "/export/series.csv",
        summary="One outlet's pollutant or one meter's values as CSV for Excel",
        description="The parameters of `/api/v1/series`, plus `lang`.",
        response_class=Response,
        responses={
            200: _csv_response(
                "UTF-8 with a BOM; columns time (Beijing time `yyyy-MM-dd HH:mm:ss`), value, "
                "unit, series; headers in Chinese (`lang=en`: English)"
            ),
            **NOT_FOUND,
            400: {"model": Problem, "description": "the parameters do not name one series"},
            **series_routes.QUERY_ERRORS,
        },
    )
    async def export_series(
        page: Annotated[SeriesPage, Depends(series_route)],
        lang: Language,
    ) -> Response:
        tags = page.series[0].tags if page.series else {}
        names = [tags.get(k, "") for k in ("enterprise", "outlet", "pollutant", "meter")]
        ident = "".join(f"-{_safe(n)}" for n in names if n)
        filename = f"series{ident}-{_stamp(svc.clock())}.csv"
        return Response(
            series_csv(page.series, lang), media_type=CSV_MEDIA, headers=_attachment(filename)
        )

    @router.get(
        "/anomalies/{anomaly_id}/evidence.zip",
        summary="The evidence pack of one anomaly, as a ZIP",
        description="`anomaly.json` (as `/api/v1/anomalies/{id}` answers), `history.json` "
        "(every recorded version), `series-<n>.csv` for each series that explains it and "
        "`chart.svg`, with the frame archive `frames/` (the raw HJ 212 frames of its devices in "
        "its window, at most 2,000, with their hash-chain proof and a note on checking it), "
        "`summary.html` (a printable page, in Chinese unless `lang=en`) and `SHA256SUMS`. "
        "Without values to chart, or when InfluxDB cannot be read, "
        "`series-note.txt` says why instead of the series.",
        response_class=Response,
        responses={
            200: {
                "description": "a ZIP file",
                "content": {ZIP_MEDIA: {"schema": {"type": "string", "format": "binary"}}},
            },
            **NOT_FOUND,
        },
    )
    async def evidence(
        anomaly_id: str,
        caller: Reader,
        lang: Language,
        max_points: series_routes.MaxPoints = 600,
    ) -> Response:
        anomaly = svc.anomaly(anomaly_id, caller)
        registry = svc.registry()
        labels = _labels()
        texts = _TEXTS[lang]
        charted: AnomalySeries | None = None
        try:
            charted = await anomaly_series_route(
                anomaly_id=anomaly_id, caller=caller, lang=lang, max_points=max_points
            )
        except HTTPException as exc:
            if exc.status_code not in (
                status.HTTP_502_BAD_GATEWAY,
                status.HTTP_503_SERVICE_UNAVAILABLE,
            ):
                raise
            note: str | None = texts["unavailable"].format(detail=exc.detail)
        else:
            note = charted.note
            if note is not None and lang == "zh":
                note = _NOTES.get(note, note)
        chart = None
        if charted is not None and charted.series:
            chart = svg.chart(
                charted.series,
                charted.window.start,
                charted.window.end,
                shade=(anomaly.started_at, anomaly.ended_at or anomaly.as_of),
                title=f"{labels.type_label(anomaly.type, lang)} {anomaly.subject}",
                lang=lang,
            )
        frames = None
        if svc.archive is not None:  # the raw frames behind it, read off the event loop
            frames = await asyncio.to_thread(
                archive_excerpt.find, svc.archive, anomaly, registry, svc.clock()
            )
        pack = Pack(
            anomaly=anomaly,
            history=[  # every version, but one of an enterprise outside the scope
                e for e in svc.store.events_of(anomaly.id) if svc.sees(caller, e.anomaly.enterprise)
            ],
            charted=charted,
            note=note,
            chart=chart,
            generated=svc.clock(),
            caller=caller,
            frames=frames,
        )
        filename = f"evidence-{_safe(anomaly.id)}-{_stamp(pack.generated)}.zip"
        return Response(
            evidence_zip(pack, registry, labels, lang),
            media_type=ZIP_MEDIA,
            headers=_attachment(filename),
        )

    return router
