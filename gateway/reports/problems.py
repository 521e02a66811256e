"""What a report could not read, by code, and its wording in Chinese and English (pure)."""

from __future__ import annotations

from typing import Literal

from .model import ReportNote

Lang = Literal["zh", "en"]
Code = Literal["influx_not_configured", "influx_unreadable"]

TEXT: dict[Code, tuple[str, str]] = {
    "influx_not_configured": (
        "未配置 InfluxDB:传输率未统计,预警与指令落实情况未知",
        "InfluxDB is not configured: no transmission rates, compliance unknown",
    ),
    "influx_unreadable": (
        "无法读取 InfluxDB:传输率未统计,预警与指令落实情况未知(已查明未落实的除外)",
        "InfluxDB could not be read: no transmission rates, compliance unknown unless violated",
    ),
}


def note(code: Code, detail: str | None = None) -> ReportNote:
    return ReportNote(code=code, message=TEXT[code][1], detail=detail)


def wording(found: ReportNote, lang: Lang) -> str:
    """The note in `lang`, its detail after it."""
    text = TEXT[found.code][0 if lang == "zh" else 1]
    if found.detail:
        text += f"(原因:{found.detail})" if lang == "zh" else f" ({found.detail})"
    return text
