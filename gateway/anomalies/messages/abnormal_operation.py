"""Sentences of the abnormal-operation family: over the limit, treatment not running,
suspicious data, flow through a bypass, values pinned under the limit, values copied between
series, flags abused, flow against production, dilution."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .common import _amount, _Ctx, _fmt, _items, _num, _power
from .labels import INTERVAL_LABELS, PATTERN_LABELS, VALUE_LABELS

# -- over_limit ------------------------------------------------------------------------------


def _basis(c: _Ctx, record: Mapping[str, Any], ref_o2: object) -> str:
    basis = str(record.get("basis", ""))
    o2 = record.get("o2")
    if basis.startswith("ZsAvg"):
        return c.t("设备上报的折算值", "ZsAvg sent by the device")
    if basis.startswith("converted") and o2 is not None and ref_o2 is not None:
        return c.t(
            f"按实测氧含量{_fmt(o2)}%折算至基准氧含量{_fmt(ref_o2)}%",
            f"converted to {_fmt(ref_o2)} % reference O2 from measured O2 {_fmt(o2)} %",
        )
    if "no usable O2" in basis:
        return c.t("无有效氧含量数据，按实测值比较", "measured value: no usable O2 to convert")
    if basis.startswith("measured"):
        return c.t("实测值", "measured value")
    return ""


def _over_limit(c: _Ctx) -> str:
    ev = c.ev
    code = ev["pollutant"]
    limit = _num(ev["limit"])
    records = _items(ev["hours"])
    peak_record = max(records, key=lambda r: _num(r["value"]))
    peak = _num(peak_record["value"])
    unit = c.unit(ev.get("unit"), code)
    first = c.time(records[0]["hour"])
    count = len(records)
    outlet, pollutant = c.outlet(ev["outlet"]), c.pollutant(code)
    where = c.head(c.t(f"{outlet}{pollutant}", f"{pollutant} at {outlet}"))
    about = [_basis(c, peak_record, ev.get("ref_o2"))]
    if count > 1:
        about.insert(0, c.time(peak_record["hour"]))
    detail = c.t("，".join(a for a in about if a), "; ".join(a for a in about if a))
    peak_text = _amount(peak, unit) + (c.t(f"（{detail}）", f" ({detail})") if detail else "")
    times = _fmt((peak - limit) / limit, 2)
    percent = _fmt((peak - limit) / limit * 100, 0)
    split = any("upload_parts" in r for r in records)
    tightened = ev.get("tightened_by")
    if c.zh:
        when = f"自{first}起连续{count}小时" if c.open else f"{first}至{c.end()}连续{count}小时"
        text = (
            f"{where}小时均值超标：{when}超过排放限值{_amount(limit, unit)}，"
            f"最高{peak_text}，超标{times}倍"
        )
        text += "（含分包未收全时判定的小时）" if split else ""
        if isinstance(tightened, Mapping):
            text += (
                f"（{c.level(tightened['plan_key'])}期间收严的限值，"
                f"常规限值{_amount(tightened['normal_limit'], unit)}）"
            )
        return text + ("。" if c.open else "，已结束。")
    when = f"for {count} h since {first}" if c.open else f"for {count} h, {first} to {c.end()}"
    text = (
        f"{where}: hourly mean over its limit of {_amount(limit, unit)} {when}; peak {peak_text}, "
        f"{percent} % over the limit"
    )
    text += " (hours judged on split uploads with parts missing)" if split else ""
    if isinstance(tightened, Mapping):
        text += (
            f" (the limit tightened under {c.level(tightened['plan_key'])}; normally "
            f"{_amount(tightened['normal_limit'], unit)})"
        )
    return text + "."


# -- treatment_not_running ------------------------------------------------------------------


def _treatment(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.line(ev["line"]))
    facilities = [
        c.facility(f["facility"]) + ("" if f.get("duty", True) else c.t("(备用)", " (standby)"))
        for f in _items(ev["treatment"])
    ]
    names = c.join(facilities)
    power = _power(c, ev["production"])
    if c.open:
        grace = c.dur(ev["grace_s"])
        since = c.time(ev.get("condition_since") or c.a.started_at)
        running = c.t(f"（{power}）", f" ({power})") if power else ""
        return c.t(
            f"{where}自{since}起生产{running}，其治污设施{names}均未运行，已超过{grace}。",
            f"{where} has been producing since {since}{running} while none of its treatment "
            f"facilities ({names}) runs, for more than {grace}.",
        )
    resumed = [
        c.facility(f["facility"])
        for f in _items(ev.get("closing_treatment") or [])
        if f.get("running") is True
    ]
    closing = ev.get("closing_production")
    if resumed:
        why = c.t(f"治污设施{c.join(resumed)}恢复运行", f"treatment resumed ({c.join(resumed)})")
    elif isinstance(closing, list) and not any(m.get("running") is True for m in _items(closing)):
        why = c.t("产线已停止生产", "production stopped")
    else:
        why = c.t("治污设施恢复运行或产线停产", "treatment resumed or production stopped")
    return c.t(
        f"{where}于{c.start()}至{c.end()}在治污设施（{names}）未运行的情况下生产{c.lasted()}；"
        f"{c.end()}时{why}。",
        f"{where} produced without treatment ({names}) for {c.lasted()}, from {c.start()} "
        f"until {c.end()}, when {why}.",
    )


# -- suspicious_data -------------------------------------------------------------------------


def _series(c: _Ctx) -> list[Mapping[str, Any]]:
    """The series of the anomaly; the former one-series form as one."""
    ev = c.ev
    if "series" in ev:
        return _items(ev["series"])
    return [
        {
            "pollutant": ev["pollutant"],
            "interval": ev["interval"],
            "value": ev["value"],
            "since": ev["since"],
            "until": None,
        }
    ]


def _series_text(c: _Ctx, pattern: str, series: list[Mapping[str, Any]]) -> str:
    groups: dict[tuple[str, str, str, str | None], list[str]] = {}
    for s in series:
        until = s.get("until")
        if until is None and not c.open and c.a.ended_at is not None:
            until = c.a.ended_at.isoformat()
        key = (
            c.pollutant(s["pollutant"]),
            _fmt(s["value"]) if pattern == "constant" else "",
            c.time(s["since"]),
            c.time(until) if until else None,
        )
        interval = str(s.get("interval", ""))
        names = INTERVAL_LABELS.get(interval)
        groups.setdefault(key, []).append(names["zh" if c.zh else "en"] if names else interval)
    texts = []
    for (pollutant, value, since, until), intervals in groups.items():
        kinds = "、".join(intervals) + "数据" if c.zh else " and ".join(intervals) + " values"
        if c.zh:
            what = {"constant": f"恒为{value}", "zeros": "持续为0", "flag_f": "持续标记为停运"}
            text = f"{pollutant}{kinds}自{since}起{what[pattern]}"
            if until:
                text += f"，至{until}" if not c.open else f"，{until}起已恢复"
        else:
            what = {
                "constant": f"held {value}",
                "zeros": "reported 0",
                "flag_f": "reported flag F (stopped)",
            }
            text = f"{pollutant} {kinds} {what[pattern]} since {since}"
            if until:
                text += f" until {until}" if not c.open else f" (moving again since {until})"
        texts.append(text)
    return "；".join(texts) if c.zh else "; ".join(texts)


def _suspicious(c: _Ctx) -> str:
    ev = c.ev
    pattern = str(ev["pattern"])
    label = PATTERN_LABELS[pattern]["zh" if c.zh else "en"]
    where = c.head(c.outlet(ev["outlet"]))
    items = _series_text(c, pattern, _series(c))
    running_by = ev.get("running_by")
    if running_by == "flow" and ev.get("flow") is not None:
        flow = _fmt(ev["flow"])
        level = _fmt(ev.get("stopped_flow") or 0.0)
        running = c.t(
            f"流量{flow}高于停运判定值{level}、显示正在排放",
            f"its flow {flow}, above the stopped level {level}, shows the source running",
        )
    elif running_by == "meters":
        running = c.t("生产电表显示正在生产", "the production meters show production running")
    else:
        running = c.t("生产期间", "the source runs")
    if c.open:
        threshold = ev.get("threshold_s")
        held = ""
        if threshold is not None:
            held = c.t(f"（判定时长{c.dur(threshold)}）", f" (threshold {c.dur(threshold)})")
        return c.t(
            f"{where}疑似数据造假（{label}）：{running}，{items}{held}。",
            f"{where}: suspected falsification ({label}) while {running}: {items}{held}.",
        )
    return c.t(
        f"{where}疑似数据造假（{label}），{c.start()}至{c.end()}：{items}，已结束。",
        f"{where}: suspected falsification ({label}) from {c.start()} until {c.end()}: {items}.",
    )


# -- bypass_flow ------------------------------------------------------------------------------


def _bypass(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.t(f"旁路{c.outlet(ev['outlet'])}", f"bypass {c.outlet(ev['outlet'])}"))
    name, unit = c.flow(ev["outlet"])
    peak, floor = _amount(ev["peak_flow"], unit), _amount(ev["stopped_flow"], unit)
    flags = [str(f) for f in ev.get("flags") or [] if f != "N"]
    flagged = ""
    if flags:
        named = [VALUE_LABELS.get(f"flag:{f}", {"zh": f, "en": f}) for f in flags]
        shown = c.join([c.t(n["zh"], n["en"]) for n in named])
        flagged = c.t(f"，期间数据标记含{shown}", f"; values flagged {shown}")
    if c.open:
        return c.t(
            f"{where}自{c.start()}起有{name}（最高{peak}，高于{floor}）{flagged}：旁路不应排放。",
            f"{where} has carried {name} since {c.start()} (peak {peak}, above {floor})"
            f"{flagged}: a bypass must not discharge.",
        )
    return c.t(
        f"{where}于{c.start()}至{c.end()}有{name}，历时{c.lasted()}（最高{peak}）{flagged}，"
        f"已停止。",
        f"{where} carried {name} for {c.lasted()}, from {c.start()} until {c.end()} (peak "
        f"{peak}){flagged}; it has stopped.",
    )


# -- values_pinned ----------------------------------------------------------------------------


def _pinned(c: _Ctx) -> str:
    ev = c.ev
    code = ev["pollutant"]
    unit = c.unit(ev.get("unit"), code)
    outlet, pollutant = c.outlet(ev["outlet"]), c.pollutant(code)
    where = c.head(c.t(f"{outlet}{pollutant}", f"{pollutant} at {outlet}"))
    limit = _amount(ev["limit"], unit)
    low, high = _amount(ev["min_value"], unit), _amount(ev["max_value"], unit)
    band = _fmt(_num(ev["band"]) * 100, 0)
    cv = _fmt(_num(ev["cv"]) * 100, 2)
    hours = int(_num(ev["held_hours"]))
    if c.zh:
        span = f"自{c.start()}起" if c.open else f"{c.start()}至{c.end()}"
        text = (
            f"{where}小时均值疑似贴线：{span}连续{hours}小时均在排放限值{limit}的{band}%至100%之间"
            f"（{low}至{high}），变异系数{cv}%，远低于正常工况的波动"
        )
        return text + ("。" if c.open else "，已恢复波动。")
    span = f"since {c.start()}" if c.open else f"from {c.start()} until {c.end()}"
    text = (
        f"{where}: hourly means held between {band} % and 100 % of the limit {limit} for "
        f"{hours} h {span} ({low} to {high}), varying by {cv} % only"
    )
    return text + ("." if c.open else "; they vary again.")


# -- values_copied ----------------------------------------------------------------------------


def _copied(c: _Ctx) -> str:
    ev = c.ev
    one = c.t(
        f"{c.outlet(ev['outlet'])}{c.pollutant(ev['pollutant'])}",
        f"{c.pollutant(ev['pollutant'])} at {c.outlet(ev['outlet'])}",
    )
    other = c.t(
        f"{c.outlet(ev['other_outlet'])}{c.pollutant(ev['other_pollutant'])}",
        f"{c.pollutant(ev['other_pollutant'])} at {c.outlet(ev['other_outlet'])}",
    )
    count, window = int(_num(ev["equal_count"])), int(_num(ev["window_hours"]))
    if c.zh:
        head = c.head(f"{one}与{other}")
        if c.open:
            return (
                f"{head}的小时均值疑似雷同：自{c.start()}起共{count}小时数值完全相同"
                f"（判定：{window}小时内至少{int(_num(ev['copied_hours']))}小时相同）。"
            )
        span = f"{c.start()}至{c.end()}"
        return f"{head}的小时均值疑似雷同：{span}共{count}小时数值完全相同，已不再相同。"
    head = c.head(f"{one} and {other}")
    if c.open:
        return (
            f"{head}: hourly means identical in {count} hours since {c.start()} (opens at "
            f"{int(_num(ev['copied_hours']))} of {window} hours)."
        )
    return f"{head}: hourly means identical in {count} hours from {c.start()} until {c.end()}."


# -- flag_abuse -------------------------------------------------------------------------------


def _flag_abuse(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.outlet(ev["outlet"]))
    flagged, counted = int(_num(ev["flagged_hours"])), int(_num(ev["hours_with_record"]))
    over = int(_num(ev["flagged_over_limit"]))
    share = _fmt(_num(ev["flagged_share"]) * 100, 0)
    window = int(_num(ev["window_hours"]))
    flags = sorted({str(f) for h in _items(ev["flagged_at"]) for f in h.get("flags", [])})
    named = [VALUE_LABELS.get(f"flag:{f}", {"zh": f, "en": f}) for f in flags]
    shown = c.join([c.t(n["zh"], n["en"]) for n in named])
    if c.zh:
        text = (
            f"{where}数据标记疑似滥用：{window}小时内有数据的{counted}小时中{flagged}小时被标记为"
            f"{shown}（占{share}%）"
        )
        text += f"，其中{over}小时的数值超过排放限值" if over else ""
        return text + (
            f"，自{c.start()}起。" if c.open else f"，{c.start()}至{c.end()}，已恢复正常。"
        )
    text = (
        f"{where}: {flagged} of {counted} hours with a record in {window} h flagged {shown} "
        f"({share} %)"
    )
    text += f", {over} of them over the limit" if over else ""
    return text + (
        f", since {c.start()}." if c.open else f", {c.start()} to {c.end()}; routine again."
    )


# -- flow_mismatch, dilution ----------------------------------------------------------------


def _running(c: _Ctx) -> str:
    """What the production meters said, from the evidence `source_running` writes."""
    meters = [m for m in _items(c.ev.get("production", [])) if "meter" in m]
    on = [c.meter(m["meter"]) for m in meters if m.get("running") is True]
    if on:
        return c.t(f"{c.join(on)}显示正在生产", f"{c.join(on)} show production running")
    named = [c.meter(m["meter"]) for m in meters]
    return c.t(f"{c.join(named)}显示未生产", f"{c.join(named)} show no production")


def _flow_mismatch(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.outlet(ev["outlet"]))
    name, unit = c.flow(ev["outlet"])
    flow, floor = _amount(ev["flow"], unit), _amount(ev["stopped_flow"], unit)
    running = _running(c)
    held = c.dur(ev["persist_s"])
    if ev.get("pattern") == "no_flow":
        what = c.t(
            f"{running}，但{name}仅{flow}（不高于停运判定值{floor}），疑似经旁路排放或流量计被干扰",
            f"{running}, but its {name} is {flow} (at or below its stopped level {floor}): "
            "the gas or water may leave by a bypass, or the flow meter is tampered with",
        )
    else:
        what = c.t(
            f"{running}且不在停产管控期，但{name}为{flow}（高于停运判定值{floor}），"
            "疑似生产电表未反映实际工况或有其他排放源",
            f"{running} and no shutdown covers it, but its {name} is {flow} (above its "
            f"stopped level {floor}): the meters may not see what runs",
        )
    if c.open:
        return c.t(
            f"{where}自{c.start()}起{what}（持续判定{held}）。",
            f"{where} since {c.start()}: {what} (held {held}).",
        )
    return c.t(
        f"{where}于{c.start()}至{c.end()}{what}，已结束。",
        f"{where} from {c.start()} until {c.end()}: {what}.",
    )


def _dilution(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.outlet(ev["outlet"]))
    o2, normal = _fmt(ev["o2"], 1), _fmt(ev["normal_o2"], 1)
    rise = _fmt(ev["o2_rise"], 1)
    running = _running(c)
    if c.open:
        return c.t(
            f"{where}疑似稀释排放：{running}，自{c.start()}起烟气氧含量{o2}%，"
            f"比该排放口正常水平{normal}%高出{rise}个百分点以上。",
            f"{where}: suspected dilution: {running}, and its flue-gas O2 has been {o2} % since "
            f"{c.start()}, more than {rise} points above its normal {normal} %.",
        )
    return c.t(
        f"{where}疑似稀释排放：{c.start()}至{c.end()}烟气氧含量比正常水平{normal}%高出{rise}个百分点"
        "以上，已恢复。",
        f"{where}: suspected dilution from {c.start()} until {c.end()}: O2 more than {rise} "
        f"points above its normal {normal} %.",
    )


RENDERERS: dict[str, Callable[[_Ctx], str]] = {
    "over_limit": _over_limit,
    "treatment_not_running": _treatment,
    "suspicious_data": _suspicious,
    "bypass_flow": _bypass,
    "values_pinned": _pinned,
    "values_copied": _copied,
    "flag_abuse": _flag_abuse,
    "flow_mismatch": _flow_mismatch,
    "dilution": _dilution,
}
