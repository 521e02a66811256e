"""The stored series that explain an anomaly, as queries with how each series is shown.

What explains an anomaly, by type:
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
from datetime import UTC, timedelta
from typing import Any

from gateway.influx.reader import SeriesQuery, TagValue

from ..registry import Enterprise, Meter, Outlet, Registry
from ..vocabulary import FLOWS, canonical, spellings
from .model import Anomaly

FLOW_CODES = tuple(code for flow in sorted(FLOWS) for code in spellings(flow))
MAX_WINDOW = timedelta(days=31)  # the longest window a chart reads
MAX_SERIES = 6  # series shown per chart
HOURLY_TYPES = frozenset({"over_limit", "data_gap"})

_INTERVALS = {"rtd": "real-time", "minute": "minute", "hour": "hourly", "day": "daily"}
_FIELDS = {"rtd": "value", "avg": "mean", "zs_rtd": "converted value", "zs_avg": "converted mean"}
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


def emission_look(outlet: str, code: str, interval: str, field: str, limits: Outlet | None) -> Look:
    """An outlet's pollutant series, with the registry's limit when `limits` has one."""
    found = limits.limit_for(code) if limits is not None else None
    limit = found[1] if found is not None else None
    name = f"{outlet} {code} {_INTERVALS.get(interval, interval)} {_FIELDS.get(field, field)}"
    if limit is None:
        return Look(name)
    unit = limit.unit or None
    return Look(name, unit, limit.limit, f"limit {limit.limit:g}{f' {unit}' if unit else ''}")


def meter_look(meter: Meter | None, meter_id: str, field: str = "p_kw") -> Look:
    """A meter's series; its power with the threshold from which the meter counts as running."""
    unit = _POWER_UNITS.get(field)
    if meter is None:
        return Look(f"meter {meter_id} {field}", unit)
    where = f"line {meter.line}" if meter.role == "production" else meter.line
    label = f"{meter.id} ({meter.role}{f', {where}' if meter.line else ''}) {field}"
    if field != "p_kw":
        return Look(label, unit)
    threshold = meter.on_threshold_kw
    return Look(label, unit, threshold, f"{meter.id} runs from {threshold:g} kW")


class Explainer:
    """The queries that explain one anomaly, over a window around it."""

    def __init__(self, anomaly: Anomaly, registry: Registry, max_points: int) -> None:
        self.anomaly = anomaly
        self.registry = registry
        self.ent: Enterprise | None = registry.enterprise(anomaly.enterprise)
        self.max_points = max_points
        hourly = anomaly.type in HOURLY_TYPES
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
        """What to read, by the anomaly's type (empty: nothing to chart)."""
        kind = self.anomaly.type
        if kind in ("over_limit", "suspicious_data"):
            return self._pollutant()
        if kind == "emission_during_shutdown":
            return self._flow()
        if kind == "data_gap":
            return self._logger(str(self.anomaly.evidence.get("mn", "")))
        if kind == "device_offline":
            what, _, ident = self.anomaly.subject.partition(":")
            if what == "mn":
                return self._logger(ident)
            if what == "meter":
                return self._meters([ident.partition("/")[2]])
            return []
        if kind == "treatment_not_running":
            return self._meters(self._line_meters(treatment=True))
        if kind in ("production_during_shutdown", "curtailment_exceeded"):
            return self._meters(self._line_meters(treatment=False))
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
        look = emission_look(outlet_id, code, interval, main, outlet)
        if self.anomaly.type != "over_limit":
            return [Wanted.one(self.query("emission", main, tags), look)]
        limit = evidence.get("limit")
        unit = evidence.get("unit") or look.unit
        if isinstance(limit, int | float):
            limit_label = f"limit {limit:g}{f' {unit}' if unit else ''}"
            ref_o2 = evidence.get("ref_o2")
            if isinstance(ref_o2, int | float):
                limit_label += f" at {ref_o2:g} % O2"
            look = Look(look.label, unit, float(limit), limit_label)
        hours = evidence.get("hours") or []
        if not any(isinstance(h, dict) and h.get("zs_avg") is not None for h in hours):
            return [Wanted.one(self.query("emission", "avg", tags), look)]
        converted = Look(
            emission_look(outlet_id, code, interval, "zs_avg", None).label,
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
            look = emission_look(outlet_id, code, interval, main, outlet)
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
                name = emission_look(outlet_id, code, interval, field, None).label
                if not isinstance(stopped, int | float):
                    return Look(name)
                return Look(name, None, float(stopped), f"stopped level {stopped:g}")

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
            return emission_look(outlet_name, code, "hour", "avg", outlet)

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
            look = meter_look(meter, meter_id)
            tags: dict[str, TagValue] = {"enterprise": self.anomaly.enterprise, "meter": meter_id}
            out.append(Wanted.one(self.query("power", "p_kw", tags), look))
        return out
