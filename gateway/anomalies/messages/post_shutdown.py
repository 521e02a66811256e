"""Sentences of the post-shutdown family: production or emission during a shutdown, a
curtailment exceeded, a banned vehicle let in; with the orders, alert plans and control
periods that oblige them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.regime import LAYERS

from .common import _amount, _Ctx, _fmt, _items, _num, _power, _unique
from .labels import CARGO_TEXT, CLASS_LABELS, FUEL_LABELS, Labels

# -- orders, alert plans and control periods -------------------------------------------------


def _source(c: _Ctx, source: Mapping[str, Any], what: str) -> str:
    """One source of an obligation (`what`: shutdown or curtailment)."""
    kind = source.get("kind")
    if kind == "order":
        return c.t({"shutdown": "停产指令", "curtailment": "限产指令"}[what], f"a {what} order")
    if kind == "schedule":
        return _schedule(c, source)
    level = c.level(source.get("level"))
    if kind == "alert plan":
        return c.t(f"重污染天气{level}", f"the {level} plan")
    if kind == "control period":
        ref = source.get("ref") or ""
        if source.get("level") in LAYERS:  # the period's own plans
            return c.t(f"{ref}（{level}）", f"control period {ref} ({level})")
        return c.t(f"{ref}管控期（按{level}管控）", f"control period {ref} ({level})")
    raise ValueError(f"unknown source kind {kind!r}")


_GRADES_EN = {"引领性": "leading", "非重点": "non-key"}


def _schedule(c: _Ctx, source: Mapping[str, Any]) -> str:
    """A schedule's window: its name and terms (daily hours, months, a yearly span)."""
    terms = source.get("schedule") or {}
    name = str(terms.get("name") or source.get("ref") or "")
    hours = [str(h) for h in terms.get("daily_hours") or []]
    months = [str(m) for m in terms.get("in_months") or []]
    span = [str(d) for d in terms.get("yearly_span") or []]
    zh, en = [], []
    if len(span) == 2:
        (m1, d1), (m2, d2) = (map(int, d.split("-")) for d in span)
        zh.append(f"每年{m1}月{d1}日至{'次年' if (m2, d2) < (m1, d1) else ''}{m2}月{d2}日")
        en.append(f"{span[0]} to {span[1]} every year")
    if months:
        zh.append(f"{'、'.join(months)}月")
        en.append(f"in month {', '.join(months)}")
    if hours:
        zh.append(f"每日{'、'.join(hours)}")
        en.append(f"daily {', '.join(hours)}")
    return c.t(f"错峰生产安排“{name}”（{'，'.join(zh)}）", f"the schedule {name} ({'; '.join(en)})")


def _plan(c: _Ctx, source: Mapping[str, Any]) -> str:
    """Where the plan applied comes from (the enterprise's own or its grade's default), with
    its responsible person and contact; nothing when the source names no plan."""
    plan = source.get("plan")
    if not isinstance(plan, Mapping):
        return ""
    grade = str(plan.get("grade") or "")
    if plan.get("origin") == "grade":
        named = grade if grade in _GRADES_EN else f"{grade}级"
        zh = f"按绩效分级{named}企业默认管控措施"
        en = f"the default plan of grade {_GRADES_EN.get(grade, grade)}"
    else:
        zh, en = "按企业“一厂一策”应急减排方案", "the enterprise's own plan"
    who, contact = plan.get("responsible"), plan.get("contact")
    if who:
        zh += f"，方案责任人{who}"
        en += f"; responsible: {who}"
    if contact:
        zh += f"，联系方式{contact}"
        en += f"; contact: {contact}"
    return c.t(f"，{zh}", f"; {en}")


def _current(label: object, ref: object, sources: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The source in force, from its label (`order`, `order <ref>`, `orange alert plan`, `red
    control period`) and ref, found among the sources when it is there."""
    text = str(label)
    if text == "order" or text.startswith("order "):
        ref = ref or text.removeprefix("order ").strip()
        return {"kind": "order", "ref": ref}
    if text == "schedule":
        for source in reversed(sources):
            if source.get("kind") == "schedule" and ref in (None, source.get("ref")):
                return dict(source)
        return {"kind": "schedule", "ref": ref}
    level, _, kind = text.partition(" ")
    for source in reversed(sources):
        same = (source.get("kind"), source.get("level")) == (kind, level)
        if same and (ref is None or source.get("ref") == ref):
            return dict(source)
    return {"kind": kind, "level": level, "ref": ref}


def _successive(c: _Ctx, sources: list[Mapping[str, Any]], what: str) -> str:
    names = _unique(_source(c, s, what) for s in sources)
    if len(names) < 2:
        return ""
    return c.t(f"（管控依据先后为{'、'.join(names)}）", f" (successively {', then '.join(names)})")


# -- production_during_shutdown ---------------------------------------------------------------


def _shutdown(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.line(ev["line"]))
    shutdown = ev["shutdown"]
    sources = _items(shutdown.get("sources", []))
    governing = _current(shutdown["source"], shutdown.get("ref"), sources)
    current = _source(c, governing, "shutdown") + _plan(c, governing)
    since, grace = c.time(shutdown["since"]), c.time(shutdown["grace_until"])
    more = _successive(c, sources, "shutdown")
    under = c.t(
        f"停产管控期（依据{current}，自{since}起，停产过渡期至{grace}）",
        f"shutdown ({current}, since {since}; ramp-down grace until {grace})",
    )
    if c.open:
        power = _power(c, ev["production"])
        running = c.t(f"（{power}）", f" ({power})") if power else ""
        return c.t(
            f"{where}处于{under}，自{c.start()}起仍在生产{running}{more}。",
            f"{where} is under {under} and has been producing since {c.start()}{running}{more}.",
        )
    closing = ev.get("closing_production")
    if isinstance(closing, list) and closing:
        runs = any(m.get("running") is True for m in _items(closing))
        why = c.t("停产管控解除", "the shutdown ended") if runs else c.t("已停止生产", "it stopped")
    else:
        why = c.t("已停产或停产管控解除", "it stopped or the shutdown ended")
    return c.t(
        f"{where}在{under}内于{c.start()}至{c.end()}仍在生产，历时{c.lasted()}{more}；"
        f"{c.end()}时{why}。",
        f"{where} was under {under} and produced for {c.lasted()}, from {c.start()} until "
        f"{c.end()}, when {why}{more}.",
    )


# -- emission_during_shutdown ----------------------------------------------------------------


def _emission(c: _Ctx) -> str:
    ev = c.ev
    outlet = ev["outlet"]
    where = c.head(c.outlet(outlet))
    name, unit = c.flow(outlet)
    stopped = _amount(ev["stopped_flow"], unit)
    shutdown = ev.get("shutdown") or {}
    sources = _items(shutdown.get("sources", []))
    governing = _current(shutdown.get("source", "order"), shutdown.get("ref"), sources)
    current = _source(c, governing, "shutdown") + _plan(c, governing)
    since, grace = c.time(ev["shutdown_since"]), c.time(ev["grace_until"])
    lines = [c.line(ln) for ln in ev.get("lines") or []]
    served = c.t(f"所服务的{c.join(lines)}", f"serving {c.join(lines)}") if lines else ""
    more = _successive(c, sources, "shutdown")
    if c.open:
        flow = _amount(ev["flow"], unit)
        return c.t(
            f"{where}{served}均处于停产管控期（依据{current}，自{since}起，过渡期至{grace}），"
            f"自{c.start()}起仍有排放：{name}{flow}，高于停运判定值{stopped}{more}。",
            f"{where}{' ' + served if served else ''} is under shutdown ({current}, since "
            f"{since}; grace until {grace}) and has still been emitting since {c.start()}: "
            f"{name} {flow}, above its stopped level {stopped}{more}.",
        )
    closed_as = ev.get("closed_as")
    if closed_as == "released":
        why = c.t("停产管控解除", "the shutdown ended")
    elif closed_as == "stopped (flag F)":
        why = c.t("数据标记为停运", "the device flagged the source stopped (F)")
    elif closed_as == "stopped" and ev.get("closing_flow") is not None:
        why = c.t(
            f"{name}降至{_amount(ev['closing_flow'], unit)}，不高于停运判定值{stopped}",
            f"the {name} fell to {_amount(ev['closing_flow'], unit)}, at or below {stopped}",
        )
    else:
        why = c.t("已停止排放或停产管控解除", "it stopped or the shutdown ended")
    return c.t(
        f"{where}在停产管控期（依据{current}）内于{c.start()}至{c.end()}持续排放，"
        f"历时{c.lasted()}{more}；{c.end()}时{why}。",
        f"{where} emitted under shutdown ({current}) for {c.lasted()}, from {c.start()} until "
        f"{c.end()}, when {why}{more}.",
    )


# -- curtailment_exceeded --------------------------------------------------------------------


def _curtailment(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.line(ev["line"]))
    percent = _fmt(ev["percent"])
    sources = _items(ev.get("sources", []))
    governing = _current(ev["source"], ev.get("ref"), sources)
    current = _source(c, governing, "curtailment") + _plan(c, governing)
    since = c.time(ev["curtailed_since"])
    hours = int(_num(ev["window_hours"]))
    energy, allowed = _fmt(ev["energy_kwh"], 0), _fmt(ev["allowed_kwh"], 0)
    baseline, days = _fmt(ev["baseline_kwh"], 0), int(_num(ev["baseline_days"]))
    tolerance = ev.get("tolerance")
    window = c.start()
    more = _successive(c, sources, "curtailment")
    if c.zh:
        allowance = f"基准用电量{baseline} kWh，取限产前{days}天同时段均值"
        allowance += f"，容差{_fmt(tolerance, 2)}倍" if tolerance is not None else ""
        used = f"{window}起{hours}小时用电量{energy} kWh，超过允许值{allowed} kWh（{allowance}）"
        under = f"限产{percent}%管控（依据{current}，自{since}起）"
        if c.open:
            return f"{where}处于{under}，{used}{more}。"
        return (
            f"{where}在{under}期间于{c.start()}至{c.end()}用电超出允许值：{used}{more}；"
            f"{c.end()}时已回到允许范围内或限产解除。"
        )
    allowance = f"baseline {baseline} kWh from {days} day(s) before the curtailment"
    allowance += f", tolerance x{_fmt(tolerance, 2)}" if tolerance is not None else ""
    used = (
        f"used {energy} kWh in the {hours} h from {window}, over the allowed {allowed} kWh "
        f"({allowance})"
    )
    under = f"a {percent} % curtailment ({current}, since {since})"
    if c.open:
        return f"{where}, under {under}, {used}{more}."
    return (
        f"{where}, under {under}, {used}{more}; over the allowance from {c.start()} until "
        f"{c.end()}, when it was back within it or no longer curtailed."
    )


# -- banned_vehicle_entry --------------------------------------------------------------------

_CLASSES_EN: dict[str, str] = {
    "heavy": "heavy trucks",
    "medium": "medium trucks",
    "light": "light trucks",
    "special": "special vehicles",
    "machinery": "non-road machinery",
}
_NUMERALS = "零一二三四五六"


def _stage(c: _Ctx, stage: object) -> str:
    text = str(stage)
    if c.zh:
        return f"国{_NUMERALS[int(text)]}" if text.isdigit() and int(text) <= 6 else f"国{text}"
    return f"China {text}"


def _word(c: _Ctx, table: Labels, key: object) -> str:
    found = table.get(str(key))
    return found["zh" if c.zh else "en"] if found is not None else str(key)


def _ban(c: _Ctx, rule: Mapping[str, Any]) -> str:
    fuels = c.join([_word(c, FUEL_LABELS, f) for f in rule["banned_fuels"]])
    classes = c.join(
        [
            _word(c, CLASS_LABELS, k) if c.zh else _CLASSES_EN.get(k, k)
            for k in rule["banned_classes"]
        ]
    )
    stage = int(_num(rule["max_banned_stage"]))
    cargo = c.join([_word(c, CARGO_TEXT, k) for k in rule.get("banned_cargo") or []])
    when = _when_banned(c, rule)
    if rule.get("require_registration"):
        return c.t(f"未登记编码的{classes}{when}", f"{classes} without a registration code{when}")
    if c.zh:
        carrying = f"运输{cargo}的" if cargo else ""
        banned = f"{_stage(c, stage)}及以下{carrying}{fuels}{classes}" if stage >= 0 else "任何车辆"
        return banned + when
    carrying = f" carrying {cargo}" if cargo else ""
    if stage < 0:
        return "nothing"
    return f"{fuels} {classes} of {_stage(c, stage)} and below{carrying}{when}"


def _when_banned(c: _Ctx, rule: Mapping[str, Any]) -> str:
    """A rule's months and Beijing times of day (staggered transport), or nothing."""
    months = [str(m) for m in rule.get("months") or []]
    windows = [str(w) for w in rule.get("time_windows") or []]
    parts = [c.t(f"{'、'.join(months)}月", f"in month {c.join(months)}")] if months else []
    parts += [c.join(windows)] if windows else []
    if not parts:
        return ""
    return c.t(f"（限{'，'.join(parts)}）", f" ({'; '.join(parts)})")


def _vehicle(c: _Ctx) -> str:
    ev = c.ev
    where = c.head(c.gate(ev["gate"]))
    plate = str(ev["plate"])
    kind = (
        f"{_stage(c, ev['stage'])}{_word(c, FUEL_LABELS, ev['fuel'])}"
        f"{_word(c, CLASS_LABELS, ev['vehicle_class'])}"
        if c.zh
        else f"{_stage(c, ev['stage'])} {_word(c, FUEL_LABELS, ev['fuel'])} "
        f"{_word(c, CLASS_LABELS, ev['vehicle_class'])}"
    )
    source = ev.get("source")
    by_kind = source.get("kind") if isinstance(source, Mapping) else None
    standing = by_kind == "standing rule"
    if isinstance(source, Mapping) and standing:
        ref, since = source.get("ref") or "", c.time(source.get("since"))
        under = c.t(
            f"自{since}起执行的常态化管控规定「{ref}」", f"the standing rule {ref} (since {since})"
        )
    elif isinstance(source, Mapping) and by_kind == "control period":
        level = c.level(ev["level"])
        ref = source.get("ref") or ""
        under = c.t(f"{ref}管控期（按{level}管控）", f"control period {ref} ({level})")
    else:
        level = c.level(ev["level"])
        under = c.t(f"重污染天气{level}", f"the {level}")
    window = ev.get("alert_window")
    span = ""
    if isinstance(window, list) and len(window) == 2:
        span = c.t(
            f"（{c.time(window[0])}至{c.time(window[1])}）",
            f" ({c.time(window[0])} to {c.time(window[1])})",
        )
    rule = ev.get("rule")
    ban = _ban(c, rule) if isinstance(rule, Mapping) else ""
    vin = ev.get("vin")
    leaving = ev.get("direction") == "out"
    cargo = ev.get("cargo")
    carried = _word(c, CARGO_TEXT, cargo) if cargo else ""
    if c.zh:
        text = f"{where}：{plate}（{kind}"
        text += f"，运输{carried}" if carried else ""
        text += f"，车辆识别代号{vin}）" if vin else "）"
        moved = "出厂" if leaving else "进厂"
        text += f"于{c.start()}{moved}，当时{under}生效{span}"
        banned = "进出厂" if leaving else "进厂"
        by = "该规定" if standing else "该级别"
        return text + (f"，{by}禁止{ban}{banned}。" if ban else f"，{by}禁止此类车辆{banned}。")
    text = f"{where}: {plate} ({kind}" + (f", carrying {carried}" if carried else "")
    text += f", VIN {vin})" if vin else ")"
    text += f" {'left' if leaving else 'entered'} at {c.start()} under {under}{span}"
    return text + (f", which bans {ban}." if ban else ", which bans it.")


RENDERERS: dict[str, Callable[[_Ctx], str]] = {
    "production_during_shutdown": _shutdown,
    "emission_during_shutdown": _emission,
    "curtailment_exceeded": _curtailment,
    "banned_vehicle_entry": _vehicle,
}
