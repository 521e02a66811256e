"""`over_limit`: a valid (flag N) hourly value of an outlet's pollutant, converted to the
outlet's reference O2, exceeds its limit. Consecutive hours merge into one anomaly.

Codes are read through the vocabulary of the device's protocol version (a 2005 logger's `02`
is SO2, its `S01` O2), and limits match whichever code the registry wrote. The rules see a
split upload once, whole (or, when its window ran out, with the parts that came, which the
evidence says).

The converted value is the device's `ZsAvg` when sent, else `Avg x (21 - O2ref) / (21 - O2)`
with the same hour's O2; without O2 (or O2 >= 20.5 %, where the correction explodes) the
measured value is compared and the evidence says so. Water outlets (no reference O2) compare
the measured mean.

Limits tightened during a control period: a limit with `control` limits under plan keys (an
alert level or a layer: `{orange = 35, event = 20}`) is judged, at each hour, with the tightest
of those of the keys in force at the hour's start (its alerts or calendar periods, from the
regime), when below the dated limit then; the hour's record says which key tightened it and the
limit it replaced.

Runs and lateness: an exceeding hour right after the open run extends it; a later valid
compliant hour, or an exceeding hour after a gap, ends the run at the end of its last
exceeding hour (a gap starts a new run). Invalid hours (flag other than N) neither extend nor
end a run. Hours of the open run seen again are ignored; an exceeding hour older than the open
run (late or back-filled) is its own one-hour anomaly. Replaying the same hours in the same
order gives the same anomalies (ids come from subject and start).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.anomalies.model import Anomaly
from gateway.model import Point, from_ns, to_ns
from gateway.regime import Regime
from gateway.registry import PollutantLimit, Registry
from gateway.vocabulary import O2, canonical

from .base import BaseRule
from .obligation import alert_source

_BEIJING = ZoneInfo("Asia/Shanghai")  # how summaries name hours
HOUR_NS = 3_600_000_000_000
_O2_CACHE = 50_000


class OverLimit(BaseRule):
    name = "over_limit"
    measurements = frozenset({"emission"})

    def __init__(self, registry: Callable[[], Registry], regime: Regime | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.regime = regime  # for limits tightened under plan keys; None: never tightened
        self.o2: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.runs: dict[str, tuple[Anomaly, int]] = {}  # subject -> (anomaly, last hour ns)

    def _remember_o2(self, point: Point) -> None:
        key = (point.tag("mn") or "", point.event_time_ns)
        self.o2[key] = float(point.field("avg"))  # type: ignore[arg-type]
        self.o2.move_to_end(key)
        while len(self.o2) > _O2_CACHE:
            self.o2.popitem(last=False)

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        hourly = [p for p in points if p.measurement == "emission" and p.tag("interval") == "hour"]
        registry = self.registry()
        for point in hourly:
            device = registry.device(point.tag("mn") or "")
            version = device.outlet.version if device is not None else None
            if canonical(point.tag("pollutant") or "", version) == O2 and isinstance(
                point.field("avg"), float
            ):
                self._remember_o2(point)
        out = []
        for point in sorted(hourly, key=lambda p: p.event_time_ns):
            out += self._judge(point, detected_at)
        return out

    def _judge(self, point: Point, detected_at: datetime) -> list[Anomaly]:
        mn, sent = point.tag("mn") or "", point.tag("pollutant") or ""
        device = self.registry().device(mn)
        at = from_ns(point.event_time_ns)
        found = device.outlet.limit_for(sent, at) if device is not None else None
        if device is None or found is None or point.field("flag") != "N":
            return []
        code, limit = found
        limit, tightened = self._tightened(device.enterprise, limit, at)
        value, basis = self._converted(point, limit.ref_o2)
        if value is None:
            return []
        subject = f"outlet:{device.enterprise}/{device.outlet.id}/{code}"
        hour = point.event_time_ns
        current = self.runs.get(subject)
        start = current[0].started_at if current else None
        if current is not None and start is not None and to_ns(start) <= hour <= current[1]:
            return []  # an hour of the open run again (a resend or a back-fill)
        if value <= limit.limit:
            if current is None or hour < current[1]:
                return []  # nothing open, or a late compliant hour from before the run
            return [self._end(subject)]
        record = {
            "hour": from_ns(hour).isoformat(),
            "value": round(value, 3),
            "basis": basis,
            "avg": point.field("avg"),
            "zs_avg": point.field("zs_avg"),
            "o2": self.o2.get((mn, hour)),
            "flag": point.field("flag"),
        }
        parts = point.field("upload_parts")
        if parts is not None:
            record["upload_parts"] = parts  # a split upload judged without all its parts
        if tightened is not None:
            record["limit"] = limit.limit
            record["tightened_by"] = tightened
        if current is not None and hour == current[1] + HOUR_NS:
            hours = [*current[0].evidence["hours"], record]
            run_limit = float(current[0].evidence["limit"])
            more: dict[str, object] = {}
            if tightened is not None and limit.limit < run_limit:
                run_limit = limit.limit  # the run's lowest, with the key that set it
                more = {"limit": run_limit, "tightened_by": tightened}
            anomaly = current[0].updated(
                from_ns(hour),
                summary=_summary(device.outlet.id, code, run_limit, hours),
                hours=hours,
                max_value=max(h["value"] for h in hours),
                **more,
            )
            self.runs[subject] = (anomaly, hour)
            return [anomaly]
        opened = Anomaly(
            type="over_limit",
            severity="alarm",
            enterprise=device.enterprise,
            subject=subject,
            started_at=from_ns(hour),
            summary=_summary(device.outlet.id, code, limit.limit, [record]),
            evidence={
                "outlet": device.outlet.id,
                "mn": mn,
                "pollutant": code,
                "code_sent": sent,
                "limit": limit.limit,
                "unit": limit.unit,
                "ref_o2": limit.ref_o2,
                "hours": [record],
                "max_value": record["value"],
                **({"tightened_by": tightened} if tightened is not None else {}),
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=from_ns(hour),
        )
        if current is not None and hour < to_ns(current[0].started_at):
            # a late hour from before the open run: its own one-hour anomaly
            return [opened.closed(from_ns(hour + HOUR_NS))]
        out = [self._end(subject)] if current is not None else []  # a gap ends the run
        self.runs[subject] = (opened, hour)
        return [*out, opened]

    def _end(self, subject: str) -> Anomaly:
        """Close the open run at the end of its last exceeding hour."""
        anomaly, last = self.runs.pop(subject)
        end = last + HOUR_NS
        return anomaly.closed(
            from_ns(end),
            summary=anomaly.summary.replace("since", "from", 1) + f" Over until {_local(end)}.",
        )

    def _tightened(
        self, enterprise: str, limit: PollutantLimit, at: datetime
    ) -> tuple[PollutantLimit, dict[str, object] | None]:
        """The limit in force at `at` with the control limits of the keys in force then, and
        which key tightened it (None when none did)."""
        ent = self.registry().enterprise(enterprise) if limit.control else None
        if ent is None or self.regime is None:
            return limit, None
        control = self.regime.in_force(ent.id, ent.region, at)
        found = [
            (limit.control[key], n, key)
            for n, key in enumerate(control.plan_keys())
            if key in limit.control and control.alerts_for(key)
        ]
        if not found or min(found)[0] >= limit.limit:
            return limit, None
        value, _, key = min(found)
        source = alert_source(control.alerts_for(key)[0], key=key)
        tightened: dict[str, object] = {
            "plan_key": key,
            "limit": value,
            "normal_limit": limit.limit,
            "source": source.evidence(),
        }
        return limit.model_copy(update={"limit": value}), tightened

    def _converted(self, point: Point, ref_o2: float | None) -> tuple[float | None, str]:
        zs = point.field("zs_avg")
        if isinstance(zs, float):
            return zs, "ZsAvg sent by the device"
        avg = point.field("avg")
        if not isinstance(avg, float):
            return None, ""
        if ref_o2 is None:
            return avg, "measured mean"
        o2 = self.o2.get((point.tag("mn") or "", point.event_time_ns))
        if o2 is None or o2 >= 20.5:
            return avg, "measured mean (no usable O2 for the conversion)"
        return avg * (21 - ref_o2) / (21 - o2), f"converted to {ref_o2} % O2 with O2 = {o2} %"

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for anomaly in open_anomalies:
            last = datetime.fromisoformat(anomaly.evidence["hours"][-1]["hour"])
            self.runs[anomaly.subject] = (anomaly, to_ns(last))


def _summary(outlet: str, code: str, limit: float, hours: list[dict[str, object]]) -> str:
    peak = max(float(h["value"]) for h in hours)  # type: ignore[arg-type]
    first = datetime.fromisoformat(str(hours[0]["hour"]))
    return (
        f"{code} at outlet {outlet} over its limit of {limit:g} for {len(hours)} h "
        f"since {first.astimezone(_BEIJING):%Y-%m-%d %H:00} (peak {peak:g})."
    )


def _local(ns: int) -> str:
    return f"{from_ns(ns).astimezone(_BEIJING):%Y-%m-%d %H:00}"
