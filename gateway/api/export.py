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
import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, TypeAdapter
from starlette.responses import StreamingResponse

from ..accounts import Caller
from ..anomalies import messages
from ..anomalies.model import Anomaly, AnomalyEvent
from ..registry import Registry
from . import series as series_routes
from . import svg
from .auth import Reader
from .deps import NOT_FOUND, READ_ERRORS, Services
from .lang import Language
from .schemas import (
    BEIJING,
    AnomalyFamily,
    AnomalyOut,
    AnomalySeries,
    AnomalyType,
    Problem,
    QueryTime,
    SeriesOut,
    SeriesPage,
)

MAX_ROWS = 100_000  # rows of one anomaly export
PAGE_ROWS = 1000  # read from the store at a time
HISTORY_IN_SUMMARY = 20  # the latest events shown in summary.html (history.json has all)
BOM = "\ufeff"
CSV_MEDIA = "text/csv; charset=utf-8"
ZIP_MEDIA = "application/zip"
Lang = Literal["zh", "en"]

# -- wording ----------------------------------------------------------------------------------

_EVENTS = {
    "opened": ("产生", "opened"),
    "updated": ("更新", "updated"),
    "closed": ("结束", "closed"),
}


def _pick(table: Mapping[str, tuple[str, str]], key: str, lang: Lang) -> str:
    found = table.get(key)
    return key if found is None else found[0 if lang == "zh" else 1]


@dataclass(frozen=True, slots=True)
class Labels:
    """How anomalies are worded: `summary(anomaly, lang=, registry=)`, and the labels of a
    type, a family, a severity and a state in a language."""

    summary: Callable[..., str]
    type_label: Callable[[str, Lang], str]
    family_label: Callable[[str, Lang], str]
    severity_label: Callable[[str, Lang], str]
    state_label: Callable[[str, Lang], str]


def _labels() -> Labels:
    """The one place the wording of anomalies comes from (`gateway.anomalies.messages`)."""
    return Labels(
        messages.summary,
        messages.type_label,
        messages.family_label,
        messages.severity_label,
        messages.state_label,
    )


_HEADERS = {
    "zh": {
        "anomalies": [
            "编号",
            "类型",
            "类别",
            "级别",
            "状态",
            "企业",
            "企业名称",
            "对象",
            "开始时间(北京时间)",
            "结束时间(北京时间)",
            "发现时间(北京时间)",
            "摘要",
            "证据",
            "规则",
        ],
        "series": ["时间(北京时间)", "值", "单位", "系列"],
    },
    "en": {
        "anomalies": [
            "id",
            "type",
            "family",
            "severity",
            "state",
            "enterprise",
            "enterprise name",
            "subject",
            "started (Beijing time)",
            "ended (Beijing time)",
            "detected (Beijing time)",
            "summary",
            "evidence",
            "rule",
        ],
        "series": ["time (Beijing time)", "value", "unit", "series"],
    },
}

_TEXTS = {
    "zh": {
        "title": "污染源监控异常证据",
        "id": "编号",
        "type": "类型",
        "severity": "级别",
        "state": "状态",
        "enterprise": "企业",
        "subject": "对象",
        "started": "开始时间(北京时间)",
        "ended": "结束时间(北京时间)",
        "detected": "发现时间(北京时间)",
        "rule": "规则",
        "summary": "摘要",
        "evidence": "证据",
        "chart": "数值曲线",
        "history": "变更记录",
        "seq": "序号",
        "event": "事件",
        "ongoing": "尚未结束",
        "generated": "生成时间(北京时间)",
        "account": "生成账号",
        "times": "本文件中的时间均为北京时间(UTC+8)。",
        "earlier": "仅列出最近 {shown} 条, 共 {total} 条, 完整记录见 history.json。",
        "unavailable": "未能读取数值曲线 ({detail}), 证据包中不含曲线数据。",
        "yes": "是",
        "no": "否",
        "bucket": "每 {seconds} 秒均值",
    },
    "en": {
        "title": "Pollution-source monitoring: evidence of an anomaly",
        "id": "id",
        "type": "type",
        "severity": "severity",
        "state": "state",
        "enterprise": "enterprise",
        "subject": "subject",
        "started": "started (Beijing time)",
        "ended": "ended (Beijing time)",
        "detected": "detected (Beijing time)",
        "rule": "rule",
        "summary": "Summary",
        "evidence": "Evidence",
        "chart": "Stored values",
        "history": "History",
        "seq": "seq",
        "event": "event",
        "ongoing": "still going on",
        "generated": "generated (Beijing time)",
        "account": "account",
        "times": "Every time in this file is Beijing time (UTC+8).",
        "earlier": "The latest {shown} of {total} events; history.json holds them all.",
        "unavailable": "The stored values could not be read ({detail}); the pack holds no series.",
        "yes": "yes",
        "no": "no",
        "bucket": "means per {seconds} s",
    },
}
_NOTES = {
    series_routes.NOTHING_TO_CHART: "此类异常没有可绘制的数值。",
    series_routes.NOTHING_STORED: "此时段内没有存储的数值。",
}

# -- formats ----------------------------------------------------------------------------------


def beijing(moment: datetime) -> str:
    """`yyyy-MM-dd HH:mm:ss` in Beijing time."""
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y%m%d-%H%M")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:64] or "_"


def _cell(value: object) -> object:
    """Text Excel would take for a formula, quoted; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def anomaly_row(anomaly: Anomaly, registry: Registry, labels: Labels, lang: Lang) -> list[str]:
    ent = registry.enterprise(anomaly.enterprise) if anomaly.enterprise else None
    return [
        anomaly.id,
        labels.type_label(anomaly.type, lang),
        labels.family_label(anomaly.family, lang),
        labels.severity_label(anomaly.severity, lang),
        labels.state_label(anomaly.state, lang),
        anomaly.enterprise,
        ent.name if ent is not None else "",
        anomaly.subject,
        beijing(anomaly.started_at),
        beijing(anomaly.ended_at) if anomaly.ended_at else "",
        beijing(anomaly.detected_at),
        labels.summary(anomaly, lang=lang, registry=registry),
        json.dumps(anomaly.evidence, ensure_ascii=False, sort_keys=True),
        anomaly.rule,
    ]


def series_label(series: SeriesOut, lang: Lang) -> str:
    if series.bucket_s is None:
        return series.label
    return f"{series.label} ({_TEXTS[lang]['bucket'].format(seconds=series.bucket_s)})"


def series_csv(series: Sequence[SeriesOut], lang: Lang) -> bytes:
    """Every value of `series`: time (Beijing), value, unit, series; UTF-8 with a BOM."""
    rows: list[Sequence[object]] = [_HEADERS[lang]["series"]]
    for s in series:
        label = series_label(s, lang)
        rows += [[beijing(t), float(v), s.unit or "", label] for t, v in s.points]
    return (BOM + _csv(rows)).encode("utf-8")


# -- the summary page -------------------------------------------------------------------------

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_MAX_DEPTH = 6


def _evidence_key(key: str, lang: Lang) -> str:
    names = messages.EVIDENCE_LABELS.get(key)
    name = names[lang] if names is not None else None
    return f"{name} ({key})" if name and name != key else key


def _scalar_html(value: object, lang: Lang) -> str:
    texts = _TEXTS[lang]
    if value is None:
        return "-"
    if isinstance(value, bool):
        return texts["yes"] if value else texts["no"]
    if isinstance(value, float):
        whole = value.is_integer() and abs(value) < 1e15
        return escape(str(int(value)) if whole else repr(value))
    if isinstance(value, str) and _ISO_TIME.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:  # evidence times without an offset are UTC, as stored
            return escape(beijing(moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
    return escape(str(value))


def _value_html(value: object, lang: Lang, depth: int = 0) -> str:
    """A value of the evidence: dicts and lists as sub-tables."""
    if depth >= _MAX_DEPTH and isinstance(value, dict | list):
        return f"<code>{escape(json.dumps(value, ensure_ascii=False))}</code>"
    if isinstance(value, dict):
        if not value:
            return "-"
        rows = "".join(
            f"<tr><th>{escape(_evidence_key(str(k), lang))}</th>"
            f"<td>{_value_html(v, lang, depth + 1)}</td></tr>"
            for k, v in value.items()
        )
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list):
        if not value:
            return "-"
        if all(isinstance(v, dict) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            head = "".join(f"<th>{escape(_evidence_key(str(k), lang))}</th>" for k in keys)
            body = "".join(
                "<tr>"
                + "".join(f"<td>{_value_html(v.get(k), lang, depth + 1)}</td>" for k in keys)
                + "</tr>"
                for v in value
            )
            return f'<table class="grid"><tr>{head}</tr>{body}</table>'
        if all(not isinstance(v, dict | list) for v in value):
            return ", ".join(_scalar_html(v, lang) for v in value)
        rows = "".join(
            f"<tr><th>{i}</th><td>{_value_html(v, lang, depth + 1)}</td></tr>"
            for i, v in enumerate(value, start=1)
        )
        return f'<table class="kv">{rows}</table>'
    return _scalar_html(value, lang)


_STYLE = """
@page { size: A4; margin: 12mm; }
body { font-family: 'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei','PingFang SC',
  sans-serif; font-size: 12px; color: #111; max-width: 190mm; margin: 0 auto; }
h1 { font-size: 18px; margin: 0 0 8px; }
h2 { font-size: 14px; margin: 14px 0 6px; border-bottom: 1px solid #999; }
table { border-collapse: collapse; margin: 2px 0; }
th, td { border: 1px solid #aaa; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: normal; white-space: nowrap; }
table.facts th { width: 10em; }
table.kv table, table.grid table { font-size: 11px; }
table.history td:nth-child(-n+4) { white-space: nowrap; }
.note { color: #a33; }
svg { max-width: 100%; height: auto; }
footer { margin-top: 14px; font-size: 11px; color: #444; }
"""


@dataclass(frozen=True, slots=True)
class Pack:
    """What the evidence pack says about one anomaly."""

    anomaly: Anomaly
    history: list[AnomalyEvent]
    charted: AnomalySeries | None
    note: str | None
    chart: str | None  # the <svg> element
    generated: datetime
    caller: Caller


def summary_html(pack: Pack, registry: Registry, labels: Labels, lang: Lang) -> str:
    """A printable one-page summary of the anomaly."""
    texts = _TEXTS[lang]
    a = pack.anomaly
    ent = registry.enterprise(a.enterprise) if a.enterprise else None
    ent_name = ent.name if ent is not None else ""
    type_label = labels.type_label(a.type, lang)
    title = f"{texts['title']}: {type_label}" + (f" - {ent_name}" if ent_name else "")

    facts = [
        (texts["id"], escape(a.id)),
        (texts["type"], escape(f"{type_label} ({a.type})")),
        (texts["severity"], escape(labels.severity_label(a.severity, lang))),
        (texts["state"], escape(labels.state_label(a.state, lang))),
        (texts["enterprise"], escape(" ".join(p for p in (a.enterprise, ent_name) if p) or "-")),
        (texts["subject"], escape(a.subject)),
        (texts["started"], escape(beijing(a.started_at))),
        (texts["ended"], escape(beijing(a.ended_at)) if a.ended_at else texts["ongoing"]),
        (texts["detected"], escape(beijing(a.detected_at))),
        (texts["rule"], escape(a.rule)),
    ]
    fact_rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)

    chart = ""
    if pack.note:
        chart += f'<p class="note">{escape(pack.note)}</p>'
    if pack.chart:
        chart += pack.chart

    shown = pack.history[-HISTORY_IN_SUMMARY:]
    history_rows = "".join(
        f"<tr><td>{e.seq}</td><td>{escape(_pick(_EVENTS, e.event, lang))}</td>"
        f"<td>{escape(labels.state_label(e.anomaly.state, lang))}</td>"
        f"<td>{escape(beijing(e.anomaly.ended_at)) if e.anomaly.ended_at else '-'}</td>"
        f"<td>{escape(labels.summary(e.anomaly, lang=lang, registry=registry))}</td></tr>"
        for e in shown
    )
    history = (
        '<table class="history">'
        f"<tr><th>{texts['seq']}</th><th>{texts['event']}</th><th>{texts['state']}</th>"
        f"<th>{texts['ended']}</th><th>{texts['summary']}</th></tr>{history_rows}</table>"
    )
    if len(pack.history) > len(shown):
        history += (
            "<p>"
            + escape(texts["earlier"].format(shown=len(shown), total=len(pack.history)))
            + "</p>"
        )

    who = pack.caller.name
    if pack.caller.display_name:
        who = f"{pack.caller.display_name} ({pack.caller.name})"
    html_lang = "zh-CN" if lang == "zh" else "en"
    return f"""<!DOCTYPE html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<table class="facts">{fact_rows}</table>
<h2>{texts["summary"]}</h2>
<p>{escape(labels.summary(a, lang=lang, registry=registry))}</p>
<h2>{texts["evidence"]}</h2>
{_value_html(a.evidence, lang)}
<h2>{texts["chart"]}</h2>
{chart}
<h2>{texts["history"]}</h2>
{history}
<footer>
<p>{texts["generated"]}: {escape(beijing(pack.generated))}; {texts["account"]}: {escape(who)}</p>
<p>{texts["times"]}</p>
</footer>
</body>
</html>
"""


class HistoryEvent(BaseModel):
    seq: int
    event: str
    as_of: datetime | None
    anomaly: AnomalyOut


_HISTORY = TypeAdapter(list[HistoryEvent])


def evidence_zip(pack: Pack, registry: Registry, labels: Labels, lang: Lang) -> bytes:
    """anomaly.json, history.json, series-<n>.csv and chart.svg (or series-note.txt),
    summary.html and SHA256SUMS."""
    files: list[tuple[str, bytes]] = [
        (
            "anomaly.json",
            AnomalyOut.of(pack.anomaly, lang, registry).model_dump_json(indent=2).encode(),
        ),
        (
            "history.json",
            _HISTORY.dump_json(
                [
                    HistoryEvent(
                        seq=e.seq,
                        event=e.event,
                        as_of=e.anomaly.as_of,
                        anomaly=AnomalyOut.of(e.anomaly, lang, registry),
                    )
                    for e in pack.history
                ],
                indent=2,
            ),
        ),
    ]
    if pack.charted is not None:
        for n, s in enumerate(pack.charted.series, start=1):
            files.append((f"series-{n}.csv", series_csv([s], lang)))
    if pack.chart is not None:
        files.append(
            ("chart.svg", ('<?xml version="1.0" encoding="UTF-8"?>\n' + pack.chart).encode())
        )
    if pack.note:
        files.append(("series-note.txt", (pack.note + "\n").encode()))
    files.append(("summary.html", summary_html(pack, registry, labels, lang).encode()))
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in files)
    files.append(("SHA256SUMS", sums.encode()))

    when = pack.generated.astimezone(BEIJING)
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as pack_zip:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            pack_zip.writestr(info, data)
    return out.getvalue()


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
        enterprise: str | None = None,
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
    ) -> StreamingResponse:
        registry = svc.registry()
        labels = _labels()
        filters: dict[str, Any] = {
            "enterprise": enterprise,
            "enterprises": svc.visible(caller),
            "type_": type_,
            "family": family,
            "state": state,
            "since": since,
            "until": until,
        }
        first, total = svc.store.query(**filters, limit=PAGE_ROWS, offset=0)

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
                page, _ = svc.store.query(**filters, limit=PAGE_ROWS, offset=offset)

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
        "`chart.svg`, `summary.html` (a printable page, in Chinese unless `lang=en`) and "
        "`SHA256SUMS`. Without values to chart, or when InfluxDB cannot be read, "
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
        pack = Pack(
            anomaly=anomaly,
            history=svc.store.events_of(anomaly.id),
            charted=charted,
            note=note,
            chart=chart,
            generated=svc.clock(),
            caller=caller,
        )
        filename = f"evidence-{_safe(anomaly.id)}-{_stamp(pack.generated)}.zip"
        return Response(
            evidence_zip(pack, registry, labels, lang),
            media_type=ZIP_MEDIA,
            headers=_attachment(filename),
        )

    return router
