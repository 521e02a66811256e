"""The CSV files of the exports, for Excel: UTF-8 with a BOM, Beijing time, text cells that
Excel would read as a formula quoted; the rows of anomalies and the values of series."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from ..anomalies.model import Anomaly
from ..registry import Registry
from .export_wording import _HEADERS, _TEXTS, Labels, Lang
from .schemas import BEIJING, SeriesOut

BOM = "\ufeff"


def beijing(moment: datetime) -> str:
    """`yyyy-MM-dd HH:mm:ss` in Beijing time."""
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


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
