"""`device_offline`: a registered device has sent nothing for its threshold (wall clock).

Opens `offline_after_s` after the last contact (frames of any kind, heartbeats included;
a meter's readings; a gate's vehicle passages); severity `warning`, raised to `alarm` after
an hour of silence, or twice the threshold when that is longer (a gate: 8 h); closes at the
next contact. Devices never heard from since
start-up count from the start.

A gate sends only passages, so its silence counts only outside its `quiet_hours` (Beijing
time; by default 22:00-06:00, when no truck passing is normal) and its threshold is longer
[4 h]: a gate system switched off by day, during an alert or not, is found; a quiet night is
not an anomaly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.anomalies.model import Anomaly
from gateway.model import Point, from_ns
from gateway.registry import Registry, quiet_window

from .base import DeviceEvent

HJ212_OFFLINE_S = 600.0
METER_OFFLINE_S = 1800.0
GATE_OFFLINE_S = 4 * 3600.0
ALARM_AFTER_S = 3600.0
BEIJING = ZoneInfo("Asia/Shanghai")
Quiet = tuple[tuple[int, int], ...]  # (start, end) minutes of the Beijing day


def silent_seconds(last: datetime, now: datetime, quiet: Quiet = ()) -> float:
    """Seconds from `last` to `now` outside the quiet windows."""
    total = (now - last).total_seconds()
    if not quiet or total <= 0:
        return total
    day = last.astimezone(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
    hushed = 0.0
    while day < now:
        for start, end in quiet:
            spans = [(start, end)] if start < end else [(0, end), (start, 24 * 60)]
            for a, b in spans:
                begin, stop = day + timedelta(minutes=a), day + timedelta(minutes=b)
                overlap = (min(stop, now) - max(begin, last)).total_seconds()
                hushed += max(0.0, overlap)
        day += timedelta(days=1)  # Beijing keeps no daylight saving time
    return total - hushed


class DeviceOffline:
    name = "device_offline"
    measurements = frozenset({"power", "vehicle_passage"})

    def __init__(self, registry: Callable[[], Registry], started_at: datetime) -> None:
        self.registry = registry
        self.started_at = started_at
        self.last_contact: dict[str, datetime] = {}
        self.open: dict[str, Anomaly] = {}
        # meters and gates: the Beijing day's slots with data (event time), for completeness
        self.slots: dict[str, tuple[date, set[int]]] = {}

    def _devices(self) -> dict[str, tuple[str, float, Quiet]]:
        """subject -> (enterprise, threshold seconds, quiet windows) for every registered
        device."""
        out: dict[str, tuple[str, float, Quiet]] = {}
        for ent in self.registry().data.enterprises:
            for outlet in ent.outlets:
                out[f"mn:{outlet.mn}"] = (ent.id, outlet.offline_after_s or HJ212_OFFLINE_S, ())
            for meter in ent.meters:
                out[f"meter:{ent.id}/{meter.id}"] = (
                    ent.id,
                    meter.offline_after_s or METER_OFFLINE_S,
                    (),
                )
            for gate in ent.gates:
                quiet = tuple(quiet_window(q) for q in gate.quiet_hours)
                threshold = gate.offline_after_s or GATE_OFFLINE_S
                out[f"gate:{ent.id}/{gate.id}"] = (ent.id, threshold, quiet)
        return out

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Meters' and gates' contact is their data (HJ 212 loggers report contact as device
        events)."""
        subjects = set()
        registry = self.registry()
        for point in points:
            ent = point.tag("enterprise") or ""
            if point.measurement == "power":
                found = registry.meter(ent, point.tag("meter") or "")
                if found is not None:  # only registered devices are kept
                    subjects.add(f"meter:{ent}/{found.id}")
                    self._slot(f"meter:{ent}/{found.id}", point, found.report_interval_s)
            elif point.measurement == "vehicle_passage":
                gate = registry.gate(ent, point.tag("gate") or "")
                if gate is not None:
                    subjects.add(f"gate:{ent}/{gate.id}")
                    self._slot(f"gate:{ent}/{gate.id}", point, 3600.0)
        return [a for s in subjects if (a := self._contact(s, detected_at)) is not None]

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        if event.kind != "contact":
            return []
        closed = self._contact(event.device, event.received_at)
        return [closed] if closed is not None else []

    def _contact(self, subject: str, at: datetime) -> Anomaly | None:
        self.last_contact[subject] = at
        anomaly = self.open.pop(subject, None)
        if anomaly is None:
            return None
        silence = (at - anomaly.started_at).total_seconds()
        return anomaly.closed(
            at,
            summary=f"{_name(subject)} was silent for {_duration(silence)}, "
            f"until {at:%Y-%m-%d %H:%M} UTC.",
            silence_s=round(silence),
        )

    def on_tick(self, now: datetime) -> list[Anomaly]:
        out = []
        for subject, (enterprise, threshold, quiet) in self._devices().items():
            last = self.last_contact.get(subject, self.started_at)
            silence = silent_seconds(last, now, quiet)
            anomaly = self.open.get(subject)
            if anomaly is None and silence >= threshold:
                anomaly = Anomaly(
                    type="device_offline",
                    severity="alarm" if silence >= _alarm_after(threshold) else "warning",
                    enterprise=enterprise,
                    subject=subject,
                    started_at=last,
                    summary=f"{_name(subject)} has sent nothing since {last:%Y-%m-%d %H:%M} UTC "
                    f"({_duration(silence)}, threshold {_duration(threshold)}).",
                    evidence={
                        "last_contact": last.isoformat(),
                        "threshold_s": threshold,
                        "silence_s": round(silence),
                        "never_seen": subject not in self.last_contact,
                    }
                    | ({"quiet_hours": _quiet_text(quiet)} if quiet else {}),
                    rule=self.name,
                    detected_at=now,
                    as_of=now,
                )
                self.open[subject] = anomaly
                out.append(anomaly)
            elif (
                anomaly is not None
                and anomaly.severity == "warning"
                and silence >= _alarm_after(threshold)
            ):
                anomaly = replace(anomaly, severity="alarm").updated(
                    now,
                    summary=f"{_name(subject)} has sent nothing for {_duration(silence)}.",
                    silence_s=round(silence),
                )
                self.open[subject] = anomaly
                out.append(anomaly)
        return out

    def _slot(self, subject: str, point: Point, every_s: float) -> None:
        local = from_ns(point.event_time_ns).astimezone(BEIJING)
        day, seen = self.slots.get(subject, (local.date(), set()))
        if local.date() > day:
            day, seen = local.date(), set()  # a new day
        elif local.date() < day:
            return  # yesterday's, late: today's completeness does not count it
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        seen.add(int((local - midnight).total_seconds() // every_s))
        self.slots[subject] = (day, seen)

    def completeness(self, subject: str, now: datetime) -> float | None:
        """A meter's or gate's share of today's ended slots (Beijing day) with data: a
        meter's slots are its `report_interval_s`, a gate's the hours outside its quiet
        hours; None before a slot has ended or for other devices."""
        kind, _, ident = subject.partition(":")
        ent, _, name = ident.partition("/")
        registry = self.registry()
        local = now.astimezone(BEIJING)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        elapsed = (local - midnight).total_seconds()
        if kind == "meter" and (meter := registry.meter(ent, name)) is not None:
            expected = set(range(int(elapsed // meter.report_interval_s)))
        elif kind == "gate" and (gate := registry.gate(ent, name)) is not None:
            quiet = [quiet_window(q) for q in gate.quiet_hours]
            expected = {h for h in range(int(elapsed // 3600)) if not _hushed(h, quiet)}
        else:
            return None
        if not expected:
            return None
        day, seen = self.slots.get(subject, (local.date(), set()))
        got = seen if day == local.date() else set()
        return len(expected & got) / len(expected)

    def online(self, subject: str) -> bool | None:
        """False while `device_offline` is open, True once heard from, None if never."""
        if subject in self.open:
            return False
        return True if subject in self.last_contact else None

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for anomaly in open_anomalies:
            self.open[anomaly.subject] = anomaly
            self.last_contact.setdefault(anomaly.subject, anomaly.started_at)


def _hushed(hour: int, quiet: list[tuple[int, int]]) -> bool:
    """Whether the hour [hour:00, hour+1:00) lies wholly in a quiet window."""
    start, end = hour * 60, hour * 60 + 60
    for a, b in quiet:
        if a < b and a <= start and end <= b:
            return True
        if a > b and (start >= a or end <= b):
            return True
    return False


def _alarm_after(threshold: float) -> float:
    """Silence that makes an alarm: an hour, or twice the threshold when that is longer."""
    return max(ALARM_AFTER_S, 2 * threshold)


def _quiet_text(quiet: Quiet) -> list[str]:
    return [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in quiet]


def _name(subject: str) -> str:
    kind, _, ident = subject.partition(":")
    return {"mn": "Data logger", "meter": "Meter", "gate": "Gate"}.get(kind, "Device") + f" {ident}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min" if rest >= 60 else f"{rest} s"
