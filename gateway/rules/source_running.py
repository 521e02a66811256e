"""Whether an outlet's source runs at a record's time, for the rules that judge emission
records only while it does (`suspicious_data`).

For an outlet whose `lines` have production meters: one of them reads `running` at the
record's time (`MeterStates`; unknown until the meters have reported up to it). For any other
outlet: its flow (`a00000` flue gas, `w00000` wastewater) is above its `stopped_flow` (0 when
not set): the flow of the same upload (same time and interval), else the latest flow at or
before the record's time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from gateway.model import Point, from_ns
from gateway.registry import Enterprise, Outlet
from gateway.vocabulary import canonical

from .base import UNKNOWN, WAIT, MeterStates, Unknown

METER_HISTORY = 2000  # verdicts kept per meter: about a week of 5-minute readings
FLOW_HISTORY = 256  # flow readings kept per outlet without meters


class Flow(NamedTuple):
    """A flow reading of an outlet judged by its flow."""

    ns: int  # event time
    interval: str
    value: float
    code: str  # 2017 code


@dataclass(frozen=True, slots=True)
class Production:
    """Whether the source ran at a record's time; for outlets judged by flow, the flow used."""

    running: bool
    flow: Flow | None = None


class SourceRunning:
    """The production meters' verdicts and, for outlets without meters, their flows."""

    def __init__(self) -> None:
        self.meters = MeterStates(keep=METER_HISTORY)
        self.flows: dict[str, list[Flow]] = {}  # MN -> its flows by time, outlets without meters

    def producing(
        self, ent: Enterprise, outlet: Outlet, at: datetime, latest: bool
    ) -> bool | Unknown:
        """Whether one of the outlet's lines produced at `at` (with `latest`, the meters'
        latest verdicts stand in for those not reported up to `at` yet)."""
        states = [self.meters.running_at(ent.id, m, at) for m in production_meters(ent, outlet)]
        if any(state is True for state in states):
            return True
        if WAIT in states:
            if latest:
                return any(self.meters.running(ent.id, m) for m in production_meters(ent, outlet))
            return WAIT
        return UNKNOWN if UNKNOWN in states else False

    def keep_flow(self, outlet: Outlet, point: Point) -> None:
        """Keep a flow reading of an outlet without meters (the latest of each time and
        interval), up to `FLOW_HISTORY` of them."""
        value = record_value(point)
        if not isinstance(value, float):
            return
        past = self.flows.setdefault(outlet.mn, [])
        code = canonical(point.tag("pollutant") or "", outlet.version)
        reading = Flow(point.event_time_ns, point.tag("interval") or "", value, code)
        index = bisect_left(past, reading[:2], key=lambda f: f[:2])
        if index < len(past) and past[index][:2] == reading[:2]:
            past[index] = reading
        elif index or len(past) < FLOW_HISTORY:
            past.insert(index, reading)
            if len(past) > FLOW_HISTORY:
                del past[0]

    def flowing(self, outlet: Outlet, point: Point) -> Production | None:
        """Production by flow at the record's time: the flow of the same upload (same time and
        interval), else the latest one at or before it; None when no flow is known."""
        past = self.flows.get(outlet.mn, [])
        ns, interval = point.event_time_ns, point.tag("interval") or ""
        index = bisect_right(past, ns, key=lambda f: f.ns)
        if not index:
            return None
        same = bisect_left(past, (ns, interval), key=lambda f: f[:2])
        flow = past[same] if same < index and past[same][:2] == (ns, interval) else past[index - 1]
        return Production(flow.value > (outlet.stopped_flow or 0.0), flow)

    def evidence(
        self, ent: Enterprise, outlet: Outlet, production: Production, at: datetime
    ) -> dict[str, Any]:
        if production.flow is None:
            return {
                "running_by": "meters",
                "production": [  # each meter's verdict at the record's time, and its latest
                    {
                        "meter": m,
                        "running": state if isinstance(state, bool) else None,
                        "latest": self.meters.evidence(ent.id, m),
                    }
                    for m in production_meters(ent, outlet)
                    for state in [self.meters.running_at(ent.id, m, at)]
                ],
            }
        flow = production.flow
        return {
            "running_by": "flow",
            "flow": flow.value,
            "stopped_flow": outlet.stopped_flow or 0.0,
            "production": [
                {
                    "pollutant": flow.code,
                    "interval": flow.interval,
                    "value": flow.value,
                    "at": from_ns(flow.ns).isoformat(),
                }
            ],
        }


def production_meters(ent: Enterprise, outlet: Outlet) -> list[str]:
    return [m.id for m in ent.meters if m.role == "production" and m.line in outlet.lines]


def record_value(point: Point) -> object:
    """The value an emission record is judged by: `rtd` for real-time data, else `avg`."""
    return point.field("rtd") if point.tag("interval") == "rtd" else point.field("avg")
