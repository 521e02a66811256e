"""The evidence pack of one anomaly: what it says (`Pack`), its ZIP (the anomaly, its history,
the series that explain it as CSV and as a chart, SHA256SUMS) and the printable one-page
summary in it."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from pydantic import BaseModel, TypeAdapter

from ..accounts import Caller
from ..anomalies import messages
from ..anomalies.model import Anomaly, AnomalyEvent
from ..archive import pack_files
from ..archive.excerpt import Excerpt
from ..registry import Registry
from .export_csv import beijing, series_csv
from .export_wording import _EVENTS, _TEXTS, Labels, Lang, _pick
from .schemas import BEIJING, AnomalyOut, AnomalySeries

HISTORY_IN_SUMMARY = 20  # the latest events shown in summary.html (history.json has all)

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
    frames: Excerpt | None = None  # the raw frames from the archive, with their chain proof


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
{_frames_html(pack, lang)}
<footer>
<p>{texts["generated"]}: {escape(beijing(pack.generated))}; {texts["account"]}: {escape(who)}</p>
<p>{texts["times"]}</p>
</footer>
</body>
</html>
"""


def _frames_html(pack: Pack, lang: Lang) -> str:
    if pack.frames is None:
        return ""
    title = "原始报文" if lang == "zh" else "Raw frames"
    return f"<h2>{title}</h2>\n<p>{escape(pack_files.summary(pack.frames, lang))}</p>"


class HistoryEvent(BaseModel):
    seq: int
    event: str
    as_of: datetime | None
    anomaly: AnomalyOut


_HISTORY = TypeAdapter(list[HistoryEvent])


def evidence_zip(pack: Pack, registry: Registry, labels: Labels, lang: Lang) -> bytes:
    """anomaly.json, history.json, series-<n>.csv and chart.svg (or series-note.txt), the
    raw frames under frames/ (with an archive), summary.html and SHA256SUMS."""
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
    if pack.frames is not None:
        files += pack_files.files(pack.frames, pack.generated)
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
