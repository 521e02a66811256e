"""The wording of the exports in Chinese and English: CSV column headers, the texts of the
evidence pack, and the labels of anomalies (from `gateway.anomalies.messages`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from ..anomalies import messages
from . import series as series_routes

Lang = Literal["zh", "en"]

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
