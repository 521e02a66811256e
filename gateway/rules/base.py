"""What every rule is: points (and device events) in, anomalies out."""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Protocol

from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent, Point, from_ns

__all__ = [
    "UNKNOWN",
    "WAIT",
    "BaseRule",
    "DeviceEvent",
    "MeterStates",
    "Rule",
    "Unknown",
    "by_time",
    "event_time",
]


class Rule(Protocol):
    name: str
    measurements: frozenset[str]  # the points it wants; the engine passes only those

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Anomalies opened, updated or closed by durable points (event time)."""

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        """Anomalies from non-data device events (refused frames, contact)."""

    def on_tick(self, now: datetime) -> list[Anomaly]:
        """Anomalies judged on the wall clock (only silence is)."""

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        """Take back the open anomalies of this rule after a restart."""


class BaseRule:
    """Defaults for rules that react to fewer inputs: nothing from the others."""

    name = "base"
    measurements: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.open: dict[str, Anomaly] = {}
        self.since: dict[str, datetime] = {}  # subject -> when its condition began

    def _hold(
        self,
        subject: str,
        holds: bool,
        at: datetime,
        persist_s: float,
        make: Callable[[datetime], Anomaly],
        close: Callable[[Anomaly], Anomaly],
    ) -> Anomaly | None:
        """A condition that must hold `persist_s` (event time) before `make(since)` opens an
        anomaly, which `close` ends at the first judgement where it no longer holds."""
        current = self.open.get(subject)
        if not holds:
            self.since.pop(subject, None)
            if current is None:
                return None
            del self.open[subject]
            return close(current)
        since = self.since.setdefault(subject, at)
        if current is not None or (at - since).total_seconds() < persist_s:
            return None
        anomaly = make(since)
        self.open[subject] = anomaly
        return anomaly

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        return []

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        return []

    def on_tick(self, now: datetime) -> list[Anomaly]:
        return []

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for anomaly in open_anomalies:
            self.open[anomaly.subject] = anomaly
            self.since[anomaly.subject] = anomaly.started_at


class Unknown(Enum):
    """A meter's verdict at some time that is not known: not yet, or no longer."""

    WAIT = "wait"
    UNKNOWN = "unknown"


WAIT, UNKNOWN = Unknown.WAIT, Unknown.UNKNOWN


class MeterStates:
    """Each meter's latest running verdict by event time; older readings are ignored (late
    data does not rewrite the present). The last `keep` verdicts are kept, so a judgement of
    another feed's record can use the state at that record's time (`running_at`)."""

    def __init__(self, keep: int = 0) -> None:
        self.latest: dict[tuple[str, str], tuple[datetime, bool, float | None]] = {}
        self.keep = keep
        self.history: dict[tuple[str, str], deque[tuple[datetime, bool]]] = {}

    def update(self, points: Sequence[Point]) -> dict[str, datetime]:
        """Take the power points; the enterprises touched, with their latest event time."""
        touched: dict[str, datetime] = {}
        for point in points:
            if point.measurement != "power" or not isinstance(point.field("running"), bool):
                continue
            at = event_time(point)
            key = (point.tag("enterprise") or "", point.tag("meter") or "")
            if key in self.latest and self.latest[key][0] > at:
                continue
            p_kw = point.field("p_kw")
            self.latest[key] = (
                at,
                bool(point.field("running")),
                p_kw if isinstance(p_kw, float) else None,
            )
            if self.keep:
                past = self.history.setdefault(key, deque(maxlen=self.keep))
                past.append((at, bool(point.field("running"))))
            touched[key[0]] = max(at, touched.get(key[0], at))
        return touched

    def evidence(self, enterprise: str, meter: str) -> dict[str, object] | None:
        state = self.latest.get((enterprise, meter))
        if state is None:
            return None
        return {"meter": meter, "running": state[1], "p_kw": state[2], "at": state[0].isoformat()}

    def readings(self, enterprise: str, meters: Sequence[str]) -> list[dict[str, object]]:
        """The evidence of those of `meters` that have a reading: built when an anomaly opens or
        changes, not at every judgement."""
        return [e for m in meters if (e := self.evidence(enterprise, m)) is not None]

    def seen(self, enterprise: str, meters: Sequence[str]) -> bool:
        """Whether one of `meters` has a reading (what `readings` would not leave empty)."""
        return any((enterprise, m) in self.latest for m in meters)

    def running(self, enterprise: str, meter: str) -> bool:
        state = self.latest.get((enterprise, meter))
        return state is not None and state[1]

    def running_at(self, enterprise: str, meter: str, at: datetime) -> bool | Unknown:
        """The verdict in force at `at`: that of the last reading at or before it. `WAIT` while
        the meter's readings have not reached `at` yet; `UNKNOWN` when `at` is older than every
        verdict kept (before a restart, or past the history)."""
        past = self.history.get((enterprise, meter))
        if not past or past[-1][0] < at:
            return WAIT
        index = bisect_right(past, at, key=lambda entry: entry[0])
        return past[index - 1][1] if index else UNKNOWN


def event_time(point: Point) -> datetime:
    return _instant(point.event_time_ns)


@lru_cache(maxsize=4096)
def _instant(ns: int) -> datetime:
    """`from_ns`, once per instant: every rule asks the time of the same points."""
    return from_ns(ns)


def by_time(points: Sequence[Point]) -> list[list[Point]]:
    """The points grouped by event time, earliest first: a batch (a meter's JSON array of
    readings) is judged reading by reading, each at its own time."""
    groups: dict[int, list[Point]] = {}
    for point in points:
        groups.setdefault(point.event_time_ns, []).append(point)
    return [groups[ns] for ns in sorted(groups)]
