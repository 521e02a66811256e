"""A report or a verdict feedback as one CSV file for Excel (pure): UTF-8 with a BOM, one
table per part under its title, Chinese headers and labels (`lang="en"`: English), times in
Beijing time. Text Excel would read as a formula gets a leading `'`."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from ..anomalies.messages import LEVEL_LABELS, type_label
from ..cases.model import STATE_LABELS, VERDICT_LABELS
from .model import DeviceRate, Feedback, FeedbackRow, Report
from .period import BEIJING
from .problems import wording

Lang = Literal["zh", "en"]
BOM = "\ufeff"
Row = Sequence[object]

_WORDS: dict[str, tuple[str, str]] = {
    "daily": ("日报", "Daily report"),
    "monthly": ("月报", "Monthly report"),
    "feedback": ("核实结论反馈", "Verdict feedback"),
    "period": ("统计期", "Period"),
    "generated": ("生成时间(北京时间)", "Generated (Beijing time)"),
    "scope": ("范围", "Scope"),
    "all": ("全部", "all"),
    "region": ("区域", "region"),
    "enterprise": ("企业", "Enterprise"),
    "enterprises": ("企业数", "Enterprises"),
    "by_type": ("异常按类型", "Anomalies by type"),
    "by_case": ("异常按案件状态", "Anomalies by case state"),
    "by_verdict": ("异常按核实结论", "Anomalies by verdict"),
    "top": ("异常最多的企业(报警优先)", "Enterprises with the most anomalies (alarms first)"),
    "timeliness": ("处置时效(本期立案)", "Handling (cases opened in the period)"),
    "transmission": ("传输率低于 {p}% 的设备", "Devices below {p} % transmission"),
    "all_devices": ("各设备传输率", "Transmission rate of every device"),
    "compliance": ("预警与停限产指令落实", "Alerts and orders: compliance"),
    "no_case": ("未立案", "no case"),
    "total": ("合计", "Total"),
    "unavailable": ("无法读取 InfluxDB", "InfluxDB could not be read"),
    "problems": ("说明", "Notes"),
    "shutdown": ("停产指令", "shutdown order"),
    "curtailment": ("限产指令", "curtailment order"),
    "complied": ("已落实", "complied"),
    "violated": ("未落实", "violated"),
    "unverifiable": ("无法核实(无数据)", "cannot be verified (no data)"),
    "unknown": ("未知", "unknown"),
    "by_type_region": ("按类型和区域", "By type and region"),
    "high": (
        "误报占比高的规则(至少 {n} 条结论,误报 ≥ {p}%)",
        "Rules with a high false-alarm share (at least {n} verdicts, >= {p} %)",
    ),
    "thresholds": ("判定阈值", "Thresholds"),
    "default": ("默认", "default"),
    "registry": ("登记", "registry"),
}
_HEADERS: dict[str, tuple[list[str], list[str]]] = {
    "by_type": (
        ["类型", "合计", "进行中", "已结束", "报警", "预警"],
        ["type", "total", "open", "closed", "alarm", "warning"],
    ),
    "by_case": (["案件状态", "异常数"], ["case state", "anomalies"]),
    "by_verdict": (["核实结论", "异常数"], ["verdict", "anomalies"]),
    "top": (
        ["企业", "企业名称", "报警", "预警", "合计", "进行中"],
        ["enterprise", "name", "alarms", "warnings", "total", "open"],
    ),
    "timeliness": (
        ["立案数", "已签收", "已销号", "签收时长中位数(小时)", "销号时长中位数(小时)", "已超期"],
        ["opened", "signed", "closed", "median hours to sign", "median hours to close", "overdue"],
    ),
    "devices": (
        ["企业", "企业名称", "排口", "MN", "收到小时数", "应收小时数", "传输率(%)"],
        ["enterprise", "name", "outlet", "MN", "hours received", "hours", "rate (%)"],
    ),
    "compliance": (
        [
            "来源",
            "编号",
            "企业",
            "企业名称",
            "开始(北京时间)",
            "结束(北京时间)",
            "结果",
            "违反的异常",
        ],
        [
            "source",
            "id",
            "enterprise",
            "name",
            "from (Beijing)",
            "to (Beijing)",
            "status",
            "anomalies",
        ],
    ),
    "feedback": (
        [
            "类型",
            "区域",
            "案件数",
            "结论数",
            "属实",
            "误报",
            "设备故障",
            "属实占比(%)",
            "误报占比(%)",
            "设备故障占比(%)",
            "签收时长中位数(小时)",
            "销号时长中位数(小时)",
            "已超期",
        ],
        [
            "type",
            "region",
            "cases",
            "verdicts",
            "confirmed",
            "false alarm",
            "device fault",
            "confirmed (%)",
            "false alarm (%)",
            "device fault (%)",
            "median hours to sign",
            "median hours to close",
            "overdue",
        ],
    ),
    "thresholds": (
        ["类型", "键", "取值", "来源", "使用处数", "示例"],
        ["type", "key", "value", "source", "places", "examples"],
    ),
}
_VERDICT_EN = {
    "confirmed": "confirmed",
    "device_fault": "device fault",
    "normal_operation": "normal operation",
    "false_alarm": "false alarm",
    "other": "other",
}


def _w(key: str, lang: Lang, **values: object) -> str:
    return _WORDS[key][0 if lang == "zh" else 1].format(**values)


def _h(key: str, lang: Lang) -> list[str]:
    return _HEADERS[key][0 if lang == "zh" else 1]


def beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _pct(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.1f}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: Sequence[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return (BOM + out.getvalue()).encode("utf-8")


def _case_state(state: str, lang: Lang) -> str:
    if state == "none":
        return _w("no_case", lang)
    table = {str(k): v for k, v in STATE_LABELS.items()}
    return table.get(state, state) if lang == "zh" else state


def _verdict(verdict: str, lang: Lang) -> str:
    zh = {str(k): v for k, v in VERDICT_LABELS.items()}
    table = zh if lang == "zh" else _VERDICT_EN
    return table.get(verdict, verdict)


def _scope(report: Report | Feedback, lang: Lang) -> str:
    s = report.scope
    parts = []
    if s.region:
        parts.append(f"{_w('region', lang)} {s.region}")
    if s.enterprise:
        parts.append(f"{_w('enterprise', lang)} {s.enterprise}")
    return ", ".join(parts) or _w("all", lang)


def _head(title: str, report: Report | Feedback, lang: Lang) -> list[Row]:
    return [
        [title],
        [_w("period", lang), report.period.label],
        [_w("scope", lang), _scope(report, lang)],
        [_w("enterprises", lang), report.scope.enterprises],
        [_w("generated", lang), beijing(report.generated_at)],
    ]


def _device(r: DeviceRate) -> Row:
    return [r.enterprise, r.name, r.outlet, r.mn, r.received, r.hours, _pct(r.rate)]


def _source(source: str, level: str | None, kind: str | None, lang: Lang) -> str:
    if source == "alert":
        names = LEVEL_LABELS.get(level or "", {})
        return names.get(lang, level or "")
    return _w(kind or "shutdown", lang)


def report_csv(report: Report, lang: Lang = "zh") -> bytes:
    """Every part of the report, one table after another."""
    title = _w("daily" if report.period.kind == "day" else "monthly", lang)
    rows: list[Row] = _head(title, report, lang)
    a = report.anomalies
    rows += [[], [_w("by_type", lang)], _h("by_type", lang)]
    rows += [
        [type_label(t.type, lang), t.total, t.open, t.closed, t.alarm, t.warning] for t in a.by_type
    ]
    rows.append([_w("total", lang), a.total, a.open, a.closed, a.alarm, a.warning])
    rows += [[], [_w("by_case", lang)], _h("by_case", lang)]
    rows += [[_case_state(c.state, lang), c.count] for c in a.by_case_state]
    rows += [[], [_w("by_verdict", lang)], _h("by_verdict", lang)]
    rows += [[_verdict(v.verdict, lang), v.count] for v in a.by_verdict]
    rows += [[], [_w("top", lang)], _h("top", lang)]
    rows += [
        [e.enterprise, e.name, e.alarm, e.warning, e.total, e.open] for e in report.top_enterprises
    ]
    t = report.timeliness
    rows += [[], [_w("timeliness", lang)], _h("timeliness", lang)]
    rows.append(
        [t.opened, t.signed, t.closed, _num(t.median_sign_h), _num(t.median_close_h), t.overdue]
    )
    rows.append([])
    if report.transmission is None:
        rows.append([_w("all_devices", lang), _w("unavailable", lang)])
    else:
        tr = report.transmission
        rows += [[_w("transmission", lang, p=f"{tr.threshold * 100:g}")], _h("devices", lang)]
        rows += [_device(r) for r in tr.below]
        rows += [[], [_w("all_devices", lang)], _h("devices", lang)]
        rows += [_device(r) for r in tr.devices]
    rows += [[], [_w("compliance", lang)], _h("compliance", lang)]
    rows += [
        [
            _source(c.source, c.level, c.order_kind, lang),
            c.ref,
            c.enterprise,
            c.name,
            beijing(c.starts_at),
            beijing(c.ends_at),
            _w(c.status, lang),
            " ".join(c.anomalies),
        ]
        for c in report.compliance
    ]
    if report.problems:
        rows += [[], [_w("problems", lang)], *([wording(p, lang)] for p in report.problems)]
    return _csv(rows)


def _feedback_row(r: FeedbackRow, lang: Lang) -> Row:
    return [
        type_label(r.type, lang),
        r.region or _w("all", lang),
        r.cases,
        r.verdicts,
        r.confirmed,
        r.false_alarm,
        r.device_fault,
        _pct(r.confirmed_share),
        _pct(r.false_alarm_share),
        _pct(r.device_fault_share),
        _num(r.median_sign_h),
        _num(r.median_close_h),
        r.overdue,
    ]


def feedback_csv(fb: Feedback, lang: Lang = "zh") -> bytes:
    rows: list[Row] = _head(_w("feedback", lang), fb, lang)
    rows += [[], [_w("by_type", lang)], _h("feedback", lang)]
    rows += [_feedback_row(r, lang) for r in fb.by_type]
    rows += [[], [_w("by_type_region", lang)], _h("feedback", lang)]
    rows += [_feedback_row(r, lang) for r in fb.by_type_region]
    if fb.high_false_alarm is not None:
        title = _w("high", lang, n=fb.min_verdicts, p=f"{fb.high_share * 100:g}")
        rows += [[], [title], _h("thresholds", lang)]
        for h in fb.high_false_alarm:
            for th in h.thresholds:
                source = _w("default" if th.default else "registry", lang)
                rows.append(
                    [
                        type_label(h.type, lang),
                        th.key,
                        th.value,
                        source,
                        th.places,
                        " ".join(th.sample),
                    ]
                )
    return _csv(rows)
