"""The stored series that explain an anomaly, as queries with how each series is shown.

What explains an anomaly, by the chart its type names in `types.TYPES`:
- `over_limit`: the outlet's values of the pollutant, with its limit; `suspicious_data`: each
  affected series of the outlet (up to six);
- `emission_during_shutdown`: the outlet's flow (`a00000` / `w00000`), with the stopped level;
- `data_gap` and `device_offline` of a data logger: its hourly means (the pollutants with a
  limit in the registry, else the others but flow);
- `treatment_not_running`: `p_kw` of the line's production meters and of its treatment
  facilities' meters; `production_during_shutdown`, `curtailment_exceeded`: the production
  meters; `device_offline` of a meter: that meter;
- other types: nothing to chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.influx.reader import SeriesQuery, TagValue

from ..registry import Enterprise, Meter, Outlet, Registry
from ..vocabulary import FLOWS, canonical, describe, spellings
from .model import Anomaly
from .types import BY_NAME

FLOW_CODES = tuple(code for flow in sorted(FLOWS) for code in spellings(flow))
MAX_WINDOW = timedelta(days=31)  # the longest window a chart reads
MAX_SERIES = 6  # series shown per chart

Lang = Literal["zh", "en"]
_INTERVALS = {
    "en": {"rtd": "real-time", "minute": "minute", "hour": "hourly", "day": "daily"},
    "zh": {"rtd": "实时", "minute": "分钟", "hour": "小时", "day": "日"},
}
_FIELDS = {
    "en": {"rtd": "value", "avg": "mean", "zs_rtd": "converted value", "zs_avg": "converted mean"},
    "zh": {"rtd": "值", "avg": "均值", "zs_rtd": "折算值", "zs_avg": "折算均值"},
}
_METER_FIELDS = {
    "p_kw": "有功功率",
    "kwh": "电量",
    "energy_kwh": "区间电量",
    "ua": "A相电压",
    "ub": "B相电压",
    "uc": "C相电压",
    "ia": "A相电流",
    "ib": "B相电流",
    "ic": "C相电流",
    "pf": "功率因数",
}
_ROLES = {"production": "生产", "treatment": "治污", "total": "总表"}
_WORDS = {
    "en": {
        "limit": "limit {v}",
        "o2": " at {v} % O2",
        "stopped": "stopped level {v}",
        "runs": "{m} runs from {v} kW",
        "meter": "meter {m} {f}",
        "line": "line {l}",
    },
    "zh": {
        "limit": "限值 {v}",
        "o2": "(基准氧含量 {v} %)",
        "stopped": "停产水平 {v}",
        "runs": "{m} 运行阈值 {v} kW",
        "meter": "电表 {m} {f}",
        "line": "生产线 {l}",
    },
}
_POWER_UNITS = {"p_kw": "kW", "kwh": "kWh", "energy_kwh": "kWh", "ua": "V", "ub": "V", "uc": "V"}
_POWER_UNITS |= {"ia": "A", "ib": "A", "ic": "A"}


@dataclass(frozen=True, slots=True)
class Look:
    """How one series is shown."""

    label: str
    unit: str | None = None
    limit: float | None = None
    limit_label: str | None = None


Describe = Callable[[str], Look | None]  # a series' group -> how it looks (None: not shown)


@dataclass(frozen=True, slots=True)
class Wanted:
    """Alternative queries, each with how its series look; the first with values is shown."""

    alternatives: tuple[tuple[SeriesQuery, Describe], ...]

    @classmethod
    def one(cls, query: SeriesQuery, look: Look) -> Wanted:
        """One query whose series all look the same."""
        return cls(((query, lambda _group: look),))


def limit_label(limit: float, unit: str | None, lang: Lang = "en") -> str:
    return _WORDS[lang]["limit"].format(v=f"{limit:g}") + (f" {unit}" if unit else "")


def emission_look(
    outlet: str,
    code: str,
    interval: str,
    field: str,
    limits: Outlet | None,
    lang: Lang = "en",
    at: datetime | None = None,
) -> Look:
    """An outlet's pollutant series, with the registry's limit (in force at `at`, else the
    first) when `limits` has one."""
    found = limits.limit_for(code, at) if limits is not None else None
    limit = found[1] if found is not None else None
    named = describe(code, limits.version if limits is not None else None)
    what = f"{named.name_zh}({code})" if lang == "zh" and named is not None else code
    when = _INTERVALS[lang].get(interval, interval)
    name = f"{outlet} {what} {when}{'' if lang == 'zh' else ' '}{_FIELDS[lang].get(field, field)}"
    if limit is None:
        return Look(name)
    unit = limit.unit or None
    return Look(name, unit, limit.limit, limit_label(limit.limit, unit, lang))


def meter_look(meter: Meter | None, meter_id: str, field: str = "p_kw", lang: Lang = "en") -> Look:
    """A meter's series; its power with the threshold from which the meter counts as running."""
    unit = _POWER_UNITS.get(field)
    words = _WORDS[lang]
    shown = _METER_FIELDS.get(field, field) if lang == "zh" else field
    if meter is None:
        return Look(words["meter"].format(m=meter_id, f=shown), unit)
    role = _ROLES.get(meter.role, meter.role) if lang == "zh" else meter.role
    where = words["line"].format(l=meter.line) if meter.role == "production" else meter.line
    sep = "," if lang == "zh" else ", "
    inner = f"{role}{f'{sep}{where}' if meter.line else ''}"
    label = f"{meter.id}({inner}){shown}" if lang == "zh" else f"{meter.id} ({inner}) {field}"
    if field != "p_kw":
        return Look(label, unit)
    threshold = meter.on_threshold_kw
    return Look(label, unit, threshold, words["runs"].format(m=meter.id, v=f"{threshold:g}"))


class Explainer:
    """The queries that explain one anomaly, over a window around it."""

    def __init__(
        self, anomaly: Anomaly, registry: Registry, max_points: int, lang: Lang = "en"
    ) -> None:
        self.anomaly = anomaly
        self.lang = lang
        self.registry = registry
        self.ent: Enterprise | None = registry.enterprise(anomaly.enterprise)
        self.max_points = max_points
        self.kind = BY_NAME[anomaly.type]
        hourly = self.kind.hourly
        last = (anomaly.ended_at or anomaly.as_of or anomaly.started_at).astimezone(UTC)
        self.start = anomaly.started_at.astimezone(UTC) - timedelta(hours=6 if hourly else 2)
        self.end = min(last + timedelta(hours=2 if hourly else 1), self.start + MAX_WINDOW)

    def query(
        self,
        measurement: str,
        field: str,
        tags: dict[str, TagValue],
        group_by: str | None = None,
    ) -> SeriesQuery:
        return SeriesQuery(
            measurement, field, tags, self.start, self.end, self.max_points, group_by
        )

    def _outlet(self, outlet_id: str) -> Outlet | None:
        outlets = self.ent.outlets if self.ent is not None else []
        return next((o for o in outlets if o.id == outlet_id), None)

    def _subject_part(self, index: int) -> str:
        """A part of a subject like `outlet:E1/DA001/a21026`."""
        parts = self.anomaly.subject.partition(":")[2].split("/")
        return parts[index] if len(parts) > index else ""

    def wanted(self) -> list[Wanted]:
        """What to read, by the chart of the anomaly's type (empty: nothing to chart)."""
        chart = self.kind.chart
        if chart == "pollutant":
            return self._pollutant()
        if chart == "flow":
            return self._flow()
        if chart == "device":
            what, _, ident = self.anomaly.subject.partition(":")
            if what == "meter":
                return self._meters([ident.partition("/")[2]])
            # `mn:<MN>`, or `mn:<MN>/rates:day` (low_transmission)
            mn = (
                ident.partition("/")[0]
                if what == "mn"
                else str(self.anomaly.evidence.get("mn", ""))
            )
            return self._logger(mn)
        if chart in ("treatment_meters", "production_meters"):
            return self._meters(self._line_meters(treatment=chart == "treatment_meters"))
        return []

    def _pollutant(self) -> list[Wanted]:
        evidence = self.anomaly.evidence
        series = evidence.get("series")
        if isinstance(series, list):  # suspicious_data: every affected series of the outlet
            return self._series(str(evidence.get("outlet", "")), series)
        outlet_id = str(evidence.get("outlet") or self._subject_part(1))
        # InfluxDB keeps the code as the device sent it (a 2005 logger's `02` for SO2)
        code = str(evidence.get("code_sent") or evidence.get("pollutant") or self._subject_part(2))
        interval = str(evidence.get("interval", "hour"))
        if not outlet_id or not code:
            return []
        tags: dict[str, TagValue] = {
            "enterprise": self.anomaly.enterprise,
            "outlet": outlet_id,
            "pollutant": code,
            "interval": interval,
        }
        outlet = self._outlet(outlet_id)
        main = "rtd" if interval == "rtd" else "avg"
        started = self.anomaly.started_at
        look = emission_look(outlet_id, code, interval, main, outlet, self.lang, started)
        if self.anomaly.type != "over_limit":
            return [Wanted.one(self.query("emission", main, tags), look)]
        limit = evidence.get("limit")
        unit = evidence.get("unit") or look.unit
        if isinstance(limit, int | float):
            text = limit_label(float(limit), unit, self.lang)
            ref_o2 = evidence.get("ref_o2")
            if isinstance(ref_o2, int | float):
                text += _WORDS[self.lang]["o2"].format(v=f"{ref_o2:g}")
            look = Look(look.label, unit, float(limit), text)
        hours = evidence.get("hours") or []
        if not any(isinstance(h, dict) and h.get("zs_avg") is not None for h in hours):
            return [Wanted.one(self.query("emission", "avg", tags), look)]
        converted = Look(
            emission_look(outlet_id, code, interval, "zs_avg", None, self.lang).label,
            look.unit,
            look.limit,
            look.limit_label,
        )
        measured = Look(look.label, look.unit)
        return [
            Wanted.one(self.query("emission", "zs_avg", tags), converted),
            Wanted.one(self.query("emission", "avg", tags), measured),
        ]

    def _series(self, outlet_id: str, series: list[Any]) -> list[Wanted]:
        outlet = self._outlet(outlet_id)
        out: list[Wanted] = []
        for entry in series[:MAX_SERIES]:
            if not isinstance(entry, dict) or not outlet_id:
                continue
            code = str(entry.get("code_sent") or entry.get("pollutant") or "")
            interval = str(entry.get("interval") or "hour")
            tags: dict[str, TagValue] = {
                "enterprise": self.anomaly.enterprise,
                "outlet": outlet_id,
                "pollutant": code,
                "interval": interval,
            }
            main = "rtd" if interval == "rtd" else "avg"
            look = emission_look(
                outlet_id, code, interval, main, outlet, self.lang, self.anomaly.started_at
            )
            out.append(Wanted.one(self.query("emission", main, tags), look))
        return out

    def _flow(self) -> list[Wanted]:
        evidence = self.anomaly.evidence
        outlet_id = str(evidence.get("outlet") or self._subject_part(1))
        stopped = evidence.get("stopped_flow")
        base: dict[str, TagValue] = {
            "enterprise": self.anomaly.enterprise,
            "outlet": outlet_id,
            "pollutant": FLOW_CODES,
        }

        def describe(interval: str, field: str) -> Describe:
            def look(code: str) -> Look:
                name = emission_look(outlet_id, code, interval, field, None, self.lang).label
                if not isinstance(stopped, int | float):
                    return Look(name)
                stopped_label = _WORDS[self.lang]["stopped"].format(v=f"{stopped:g}")
                return Look(name, None, float(stopped), stopped_label)

            return look

        finest_first = [("rtd", "rtd"), ("minute", "avg"), ("hour", "avg")]
        return [
            Wanted(
                tuple(
                    (
                        self.query("emission", field, {**base, "interval": interval}, "pollutant"),
                        describe(interval, field),
                    )
                    for interval, field in finest_first
                )
            )
        ]

    def _logger(self, mn: str) -> list[Wanted]:
        if not mn:
            return []
        device = self.registry.device(mn)
        outlet = device.outlet if device is not None else None
        outlet_name = outlet.id if outlet is not None else mn
        version = outlet.version if outlet is not None else None
        limited = (
            {canonical(c, version) for c in outlet.pollutants} if outlet is not None else set()
        )

        def describe(code: str) -> Look | None:
            if limited and canonical(code, version) not in limited:
                return None
            if not limited and canonical(code, version) in FLOWS:
                return None
            at = self.anomaly.started_at
            return emission_look(outlet_name, code, "hour", "avg", outlet, self.lang, at)

        tags: dict[str, TagValue] = {"mn": mn, "interval": "hour"}
        return [Wanted(((self.query("emission", "avg", tags, "pollutant"), describe),))]

    def _line_meters(self, *, treatment: bool) -> list[str]:
        line_id = str(self.anomaly.evidence.get("line") or self._subject_part(1))
        if self.ent is None:
            return []
        found = [m.id for m in self.ent.meters if m.role == "production" and m.line == line_id]
        if treatment:
            line = next((ln for ln in self.ent.lines if ln.id == line_id), None)
            facilities = {f.id: f for f in self.ent.facilities}
            for link in line.treatment if line is not None else []:
                facility = facilities.get(link.facility)
                found += facility.meters if facility is not None else []
        return list(dict.fromkeys(found))

    def _meters(self, meter_ids: Sequence[str]) -> list[Wanted]:
        out = []
        for meter_id in meter_ids[:MAX_SERIES]:
            meter = self.registry.meter(self.anomaly.enterprise, meter_id)
            look = meter_look(meter, meter_id, lang=self.lang)
            tags: dict[str, TagValue] = {"enterprise": self.anomaly.enterprise, "meter": meter_id}
            out.append(Wanted.one(self.query("power", "p_kw", tags), look))
        return out
