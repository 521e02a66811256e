"""Sentences of a plan's key indicator beyond its limit (furnaces in operation, load, a value a
device reports), with the plan key, its source and the plan's responsible person."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.regime import LAYERS
from gateway.vocabulary import describe

from .common import _Ctx, _fmt, _items
from .post_shutdown import _current, _source

# -- plan_indicator_exceeded ------------------------------------------------------------------


def _unit(c: _Ctx, source: Mapping[str, Any]) -> str:
    kind = source.get("from")
    if kind == "running":
        return c.t("台", "")
    if kind == "load":
        return "%"
    known = describe(str(source.get("code", "")))
    return f" {known.unit}" if known is not None and known.unit else ""


def _value(c: _Ctx, value: object, unit: str) -> str:
    text = _fmt(value, 2)
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("台", "%") or unit.startswith(" ") else f"{text} {unit}"


def _what(c: _Ctx, source: Mapping[str, Any]) -> str:
    """Where the value comes from."""
    kind = source.get("from")
    if kind == "running":
        meters = [c.meter(m) for m in source.get("meters") or []]
        return c.t(f"按{c.join(meters)}运行台数", f"production meters running: {c.join(meters)}")
    if kind == "load":
        rated = _fmt(source["rated_kw"], 1)
        return c.t(
            f"{c.meter(source['meter'])}功率占额定{rated} kW之比",
            f"power of {c.meter(source['meter'])} in % of its rated {rated} kW",
        )
    code = str(source["code"])
    return c.t(
        f"{c.logger(source['mn'])}上报的{c.pollutant(code)}",
        f"{c.pollutant(code)} reported by {c.logger(source['mn'])}",
    )


def _under(c: _Ctx, source: Mapping[str, Any]) -> str:
    """The alert or period that brings the plan (a declared layer is named as the layer)."""
    if source.get("kind") == "alert plan" and source.get("level") in LAYERS:
        return c.level(source["level"])
    return _source(c, source, "shutdown")


def _limit(c: _Ctx, unit: str) -> str:
    top, bottom = c.ev.get("max_allowed"), c.ev.get("min_allowed")
    parts = []
    if top is not None:
        parts.append(c.t(f"不高于{_value(c, top, unit)}", f"at most {_value(c, top, unit)}"))
    if bottom is not None:
        parts.append(c.t(f"不低于{_value(c, bottom, unit)}", f"at least {_value(c, bottom, unit)}"))
    if not parts:
        raise ValueError("no limit")
    return c.join(parts)


def _indicator(c: _Ctx) -> str:
    ev = c.ev
    source = ev["indicator_source"]
    unit = _unit(c, source)
    name = str(ev.get("indicator_name") or ev["indicator"])
    where = c.head(
        c.t(f"{c.line(ev['line'])}关键指标{name}", f"key indicator {name} of {c.line(ev['line'])}")
    )
    key = c.level(ev["plan_key"])
    duty = ev["obligation"]
    sources = _items(duty.get("sources", []))
    under = _under(c, _current(duty["source"], duty.get("ref"), sources))
    grace = c.time(duty["grace_until"])
    limit = _limit(c, unit)
    what = _what(c, source)
    person = str(ev.get("responsible") or "")
    contact = str(ev.get("contact") or "")
    who = ""
    if person or contact:
        reach = c.t(f"（{contact}）", f" ({contact})") if person and contact else contact
        who = c.t(
            f"；方案责任人{person}{reach}", f"; the plan's responsible person: {person}{reach}"
        )
    values = [v for v in _items(ev.get("values", [])) if "value" in v]
    peak = ev.get("peak")
    if peak is None and values:
        peak = values[0]["value"]
    if c.open:
        now = _value(c, ev["value"], unit)
        return c.t(
            f"{where}（{what}）为{now}，超出{key}方案限值（{limit}），自{c.start()}起持续超过"
            f"{c.dur(ev['persist_s'])}（依据{under}，过渡期至{grace}）{who}。",
            f"{where} ({what}) is {now}, beyond the {key} plan's limit ({limit}) since "
            f"{c.start()} for more than {c.dur(ev['persist_s'])} (under {under}; grace until "
            f"{grace}){who}.",
        )
    peak_text = _value(c, peak, unit) if peak is not None else ""
    peak_part = c.t(f"，最高{peak_text}", f", peak {peak_text}") if peak_text else ""
    if ev.get("closed_as") == "released":
        why = c.t("方案不再生效", "no plan in force limited it any more")
    else:
        why = c.t("已回到限值内", "it was back within the limit")
    return c.t(
        f"{where}（{what}）于{c.start()}至{c.end()}超出{key}方案限值（{limit}）{peak_part}"
        f"（依据{under}）{who}；{c.end()}时{why}。",
        f"{where} ({what}) was beyond the {key} plan's limit ({limit}) from {c.start()} until "
        f"{c.end()}{peak_part} (under {under}){who}; then {why}.",
    )


RENDERERS: dict[str, Callable[[_Ctx], str]] = {
    "plan_indicator_exceeded": _indicator,
}
