"""What every sentence is made of: the rendering context (an anomaly, a language, names from
the registry), Beijing times, numbers, durations, and the generic sentence of an anomaly whose
evidence lacks what its type's sentence needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.vocabulary import describe

from ..model import Anomaly
from .labels import LEVEL_LABELS, PATTERN_LABELS, TYPE_LABELS, Lang, type_label

if TYPE_CHECKING:
    from gateway.registry import Enterprise, Outlet, Registry

BEIJING = ZoneInfo("Asia/Shanghai")
HOUR = timedelta(hours=1)


def format_time(at: datetime | str) -> str:
    """`2025-01-10 08:00`, Beijing time, from an aware datetime or an ISO string (a naive one
    is taken as UTC, as the gateway stores times)."""
    return f"{_when(at).astimezone(BEIJING):%Y-%m-%d %H:%M}"


def _when(value: object) -> datetime:
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str):
        at = datetime.fromisoformat(value)
    else:
        raise TypeError(f"not a time: {value!r}")
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def _fmt(value: object, digits: int = 3) -> str:
    text = f"{_num(value):.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _amount(value: object, unit: str, digits: int = 3) -> str:
    return f"{_fmt(value, digits)} {unit}" if unit else _fmt(value, digits)


def _duration(seconds: float, zh: bool) -> str:
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}秒" if zh else f"{total} s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    units = ("天", "小时", "分钟") if zh else (" d", " h", " min")
    parts = [f"{n}{u}" for n, u in zip((days, hours, minutes), units, strict=True) if n]
    return "".join(parts) if zh else " ".join(parts)


def _items(values: object) -> list[Mapping[str, Any]]:
    """The dicts of a list in the evidence (a list is required; other entries are skipped)."""
    if not isinstance(values, list):
        raise TypeError("not a list")
    return [v for v in values if isinstance(v, Mapping)]


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


class _Ctx:
    """One rendering: the anomaly, the language, and names from the registry when given."""

    def __init__(self, anomaly: Anomaly, lang: Lang, registry: Registry | None) -> None:
        self.a = anomaly
        evidence = anomaly.evidence
        self.ev: Mapping[str, Any] = evidence if isinstance(evidence, Mapping) else {}
        self.zh = lang == "zh"
        self.registry = registry
        self.ent: Enterprise | None = (
            registry.enterprise(anomaly.enterprise) if registry is not None else None
        )

    @property
    def open(self) -> bool:
        return self.a.state != "closed"

    def t(self, zh: str, en: str) -> str:
        return zh if self.zh else en

    def join(self, texts: Sequence[str]) -> str:
        if self.zh:
            return "、".join(texts)
        if len(texts) <= 2:
            return " and ".join(texts)
        return f"{', '.join(texts[:-1])} and {texts[-1]}"

    def time(self, value: object) -> str:
        return format_time(_when(value))

    def dur(self, seconds: object) -> str:
        return _duration(_num(seconds), self.zh)

    def between(self, begin: object, end: object) -> str:
        first, last = self.time(begin), self.time(end)
        if first == last:
            return self.t(first, f"at {first}")
        return self.t(f"{first}至{last}", f"from {first} until {last}")

    def start(self) -> str:
        return format_time(self.a.started_at)

    def end(self) -> str:
        if self.a.ended_at is None:
            raise ValueError("closed without an end")
        return format_time(self.a.ended_at)

    def lasted(self) -> str:
        if self.a.ended_at is None:
            raise ValueError("closed without an end")
        return _duration((self.a.ended_at - self.a.started_at).total_seconds(), self.zh)

    def head(self, place: str) -> str:
        """The place of the anomaly within its enterprise (named when the registry knows it)."""
        name = self.ent.name if self.ent is not None and self.ent.name else self.a.enterprise
        if self.zh:
            return place if not name or name == "unregistered" else f"{name} {place}"
        text = place if not name or name == "unregistered" else f"{place} of {name}"
        return text[:1].upper() + text[1:]

    # -- names ----------------------------------------------------------------------------

    def pollutant(self, code: object) -> str:
        text = str(code)
        known = describe(text)
        if known is None:
            return text
        return f"{known.name_zh}({known.code})" if self.zh else f"{known.name_en} ({known.code})"

    def unit(self, unit: object, code: object) -> str:
        """The unit the evidence gives, else the vocabulary's concentration unit of `code`."""
        if isinstance(unit, str) and unit:
            return unit
        known = describe(str(code))
        return known.unit if known is not None else ""

    def _outlet(self, ident: str) -> Outlet | None:
        if self.ent is None:
            return None
        return next((o for o in self.ent.outlets if o.id == ident), None)

    def _kind(self, ident: str, found: Outlet | None = None) -> str:
        outlet = found or self._outlet(ident)
        return outlet.kind if outlet is not None else ""

    def outlet(self, ident: object, found: Outlet | None = None) -> str:
        text = str(ident)
        kind = self._kind(text, found)
        zh = {"gas": "废气排放口", "water": "废水排放口"}.get(kind, "排放口")
        en = {"gas": "flue-gas outlet", "water": "wastewater outlet"}.get(kind, "outlet")
        return self.t(f"{zh}{text}", f"{en} {text}")

    def flow(self, outlet: object) -> tuple[str, str]:
        """(name, unit) of an outlet's flow: flue gas or wastewater when the registry says."""
        kind = self._kind(str(outlet))
        code = {"gas": "a00000", "water": "w00000"}.get(kind)
        known = describe(code) if code else None
        if known is None:
            return self.t("流量", "flow"), ""
        return self.t(known.name_zh, known.name_en), known.unit

    def logger(self, mn: object) -> str:
        text = str(mn)
        device = self.registry.device(text) if self.registry is not None else None
        where = ""
        if device is not None:
            where = self.t(
                f"({self.outlet(device.outlet.id, device.outlet)})",
                f" ({self.outlet(device.outlet.id, device.outlet)})",
            )
        return self.t(f"数采仪{text}{where}", f"data logger {text}{where}")

    def meter(self, ident: object) -> str:
        text = str(ident)
        found = self.registry.meter(self.a.enterprise, text) if self.registry else None
        role = found.role if found is not None else ""
        zh = {"production": "生产电表", "treatment": "治污电表", "total": "总电表"}.get(
            role, "电表"
        )
        en = {"production": "production meter ", "treatment": "treatment meter "}.get(
            role, "meter "
        )
        return self.t(f"{zh}{text}", f"{en}{text}")

    def named(self, name: str, ident: str) -> str:
        """A registry name with its id, or the id alone."""
        if not name or name == ident:
            return ident
        return self.t(f"{name}({ident})", f"{name} ({ident})")

    def line(self, ident: object) -> str:
        text = str(ident)
        found = next((ln for ln in self.ent.lines if ln.id == text), None) if self.ent else None
        label = self.named(found.name if found is not None else "", text)
        return self.t(f"产线{label}", f"line {label}")

    def facility(self, ident: object) -> str:
        text = str(ident)
        found = next((f for f in self.ent.facilities if f.id == text), None) if self.ent else None
        return self.named(found.name if found is not None else "", text)

    def gate(self, ident: object) -> str:
        text = str(ident)
        found = self.registry.gate(self.a.enterprise, text) if self.registry else None
        label = self.named(found.name if found is not None else "", text)
        return self.t(f"门禁{label}", f"gate {label}")

    def level(self, level: object) -> str:
        found = LEVEL_LABELS.get(str(level))
        if found is None:
            raise ValueError(f"unknown level {level!r}")
        return found["zh" if self.zh else "en"]

    def device(self, subject: str) -> str:
        """The device a `mn:`, `meter:` or `gate:` subject names."""
        kind, _, ident = subject.partition(":")
        if kind == "mn":
            return self.logger(ident.partition("/")[0])
        if kind == "meter":
            return self.meter(ident.partition("/")[2] or ident)
        if kind == "gate":
            return self.gate(ident.partition("/")[2] or ident)
        return self.t(f"设备{ident or subject}", f"device {ident or subject}")


# -- the generic sentence ------------------------------------------------------------------


def _place(c: _Ctx) -> str:
    """What the subject names, as well as it can be read."""
    subject = c.a.subject
    kind, _, rest = subject.partition(":")
    if kind in ("mn", "meter", "gate"):
        return c.device(subject)
    head, _, pattern = rest.rpartition(":") if kind == "outlet" else (rest, "", "")
    if pattern not in PATTERN_LABELS:
        head, pattern = rest, ""
    parts = head.split("/")
    if kind == "line" and len(parts) >= 2:
        return c.line(parts[1])
    if kind == "outlet" and len(parts) >= 2:
        text = c.outlet(parts[1])
        if len(parts) >= 3:
            pollutant = c.pollutant(parts[2])
            text = c.t(f"{text}{pollutant}", f"{pollutant} at {text}")
        if pattern:
            label = PATTERN_LABELS[pattern]
            text += c.t(f"({label['zh']})", f" ({label['en']})")
        return text
    if kind == "gate" and len(parts) >= 2:
        plate = f" {parts[2]}" if len(parts) >= 3 else ""
        return c.gate(parts[1]) + plate
    if kind == "address":
        return c.t("来自多个地址", "many addresses") if rest == "*" else c.t(f"地址{rest}", rest)
    return subject


def _generic(c: _Ctx) -> str:
    label = type_label(c.a.type, "zh" if c.zh else "en") if c.a.type in TYPE_LABELS else c.a.type
    place = c.head(_place(c))
    if c.open or c.a.ended_at is None:
        return c.t(
            f"{label}：{place}，自{c.start()}起，仍在进行中。",
            f"{label}: {place}, since {c.start()}, still open.",
        )
    return c.t(
        f"{label}：{place}，{c.between(c.a.started_at, c.a.ended_at)}。",
        f"{label}: {place}, {c.between(c.a.started_at, c.a.ended_at)}.",
    )


# -- shared by treatment and shutdown --------------------------------------------------------


def _power(c: _Ctx, production: object) -> str:
    """The production meters that run, with their power."""
    shown = []
    for meter in _items(production):
        if meter.get("running") is not True:
            continue
        kw = meter.get("p_kw")
        name = c.meter(meter["meter"])
        if isinstance(kw, int | float) and not isinstance(kw, bool):
            shown.append(c.t(f"{name}功率{_fmt(kw, 1)} kW", f"{name} at {_fmt(kw, 1)} kW"))
        else:
            shown.append(c.t(f"{name}显示运行", f"{name} running"))
    return c.join(shown)
