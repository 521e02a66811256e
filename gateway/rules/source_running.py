"""Whether an outlet's source runs at a record's time, for the rules that judge emission
records against it (`suspicious_data`, `flow_mismatch`, `dilution`), and the records waiting
until the production meters have reported up to their time (`WaitingRecords`).

For an outlet whose `lines` have production meters: one of them reads `running` at the
record's time (`MeterStates`; unknown until the meters have reported up to it). For any other
outlet: its flow (`a00000` flue gas, `w00000` wastewater) is above its `stopped_flow` (0 when
not set): the flow of the same upload (same time and interval), else the latest flow at or
before the record's time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from gateway.model import Point, from_ns
from gateway.registry import Enterprise, Outlet, Registry
from gateway.vocabulary import canonical

from .base import UNKNOWN, WAIT, MeterStates, Unknown, event_time

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


Judge = Callable[[Enterprise, Outlet, Point, bool], None]


class WaitingRecords:
    """Records of outlets judged by their production meters, waiting (per MN, oldest first)
    until the meters have reported up to their time, so the order in which the two feeds arrive
    does not matter. At most `max_waiting` in all: past it, the device with the oldest record
    is judged by its meters' latest verdicts. A record whose time is older than every verdict
    kept is dropped unjudged."""

    def __init__(self, source: SourceRunning, max_waiting: int) -> None:
        self.source = source
        self.max_waiting = max_waiting
        self.pending: dict[str, deque[tuple[str, Point]]] = {}  # MN -> (enterprise, record)
        self.size = 0

    def add(self, enterprise: str, mn: str, point: Point) -> None:
        self.pending.setdefault(mn, deque()).append((enterprise, point))
        self.size += 1

    def release(self, registry: Registry, mn: str, judge: Judge, *, force: bool = False) -> None:
        """Judge the device's waiting records, oldest first, while production at their time is
        known; with `force`, the first one by the meters' latest verdicts."""
        queue = self.pending.get(mn)
        if queue is None:
            return
        device = registry.device(mn)
        ent = registry.enterprise(device.enterprise) if device is not None else None
        while queue:
            point = queue[0][1]
            producing: bool | Unknown = UNKNOWN
            if device is not None and ent is not None:
                at = event_time(point)
                producing = self.source.producing(ent, device.outlet, at, force)
                if producing is WAIT:
                    break
            queue.popleft()
            self.size -= 1
            force = False
            if isinstance(producing, bool) and device is not None and ent is not None:
                judge(ent, device.outlet, point, producing)
        if not queue:
            del self.pending[mn]

    def release_touched(self, registry: Registry, touched: Collection[str], judge: Judge) -> None:
        """Release the devices of the enterprises whose meters just reported."""
        if touched:
            for mn in [m for m, queue in self.pending.items() if queue[0][0] in touched]:
                self.release(registry, mn, judge)

    def bound(self, registry: Registry, judge: Judge) -> None:
        while self.size > self.max_waiting:  # meters silent for long: judge by what is known
            mn = min(self.pending, key=lambda m: self.pending[m][0][1].event_time_ns)
            self.release(registry, mn, judge, force=True)
