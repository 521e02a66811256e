"""`device_offline`: a registered device has sent nothing for its threshold (wall clock).

Opens `offline_after_s` after the last contact (frames of any kind, heartbeats included);
severity `warning`, raised to `alarm` after `alarm_after_s` of silence; closes at the next
contact. Devices never heard from since start-up count from the start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Registry

from .base import DeviceEvent

HJ212_OFFLINE_S = 600.0
METER_OFFLINE_S = 1800.0
ALARM_AFTER_S = 3600.0


class DeviceOffline:
    name = "device_offline"
    measurements = frozenset({"power"})

    def __init__(self, registry: Callable[[], Registry], started_at: datetime) -> None:
        self.registry = registry
        self.started_at = started_at
        self.last_contact: dict[str, datetime] = {}
        self.open: dict[str, Anomaly] = {}

    def _devices(self) -> dict[str, tuple[str, float]]:
        """subject -> (enterprise, threshold seconds) for every registered device."""
        out: dict[str, tuple[str, float]] = {}
        for ent in self.registry().data.enterprises:
            for outlet in ent.outlets:
                out[f"mn:{outlet.mn}"] = (ent.id, outlet.offline_after_s or HJ212_OFFLINE_S)
            for meter in ent.meters:
                out[f"meter:{ent.id}/{meter.id}"] = (
                    ent.id,
                    meter.offline_after_s or METER_OFFLINE_S,
                )
        return out

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Meters' contact is their data (HJ 212 loggers report contact as device events)."""
        subjects = set()
        for point in points:
            if point.measurement == "power":
                subjects.add(f"meter:{point.tag('enterprise')}/{point.tag('meter')}")
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
        for subject, (enterprise, threshold) in self._devices().items():
            last = self.last_contact.get(subject, self.started_at)
            silence = (now - last).total_seconds()
            anomaly = self.open.get(subject)
            if anomaly is None and silence >= threshold:
                anomaly = Anomaly(
                    type="device_offline",
                    severity="alarm" if silence >= ALARM_AFTER_S else "warning",
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
                    },
                    rule=self.name,
                    detected_at=now,
                    as_of=now,
                )
                self.open[subject] = anomaly
                out.append(anomaly)
            elif anomaly is not None and anomaly.severity == "warning" and silence >= ALARM_AFTER_S:
                anomaly = replace(anomaly, severity="alarm").updated(
                    now,
                    summary=f"{_name(subject)} has sent nothing for {_duration(silence)}.",
                    silence_s=round(silence),
                )
                self.open[subject] = anomaly
                out.append(anomaly)
        return out

    def online(self, subject: str) -> bool | None:
        """False while `device_offline` is open, True once heard from, None if never."""
        if subject in self.open:
            return False
        return True if subject in self.last_contact else None

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for anomaly in open_anomalies:
            self.open[anomaly.subject] = anomaly
            self.last_contact.setdefault(anomaly.subject, anomaly.started_at)


def _name(subject: str) -> str:
    kind, _, ident = subject.partition(":")
    return {"mn": "Data logger", "meter": "Meter"}.get(kind, "Device") + f" {ident}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min" if rest >= 60 else f"{rest} s"
