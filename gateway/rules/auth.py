"""`unregistered_device` and `auth_failure`: frames from unknown MNs or with a wrong PW.

One open anomaly per device, not one per frame: the first refused frame opens it, later ones
update its count at most once per `update_every_s`; it closes when the device's next frame is
accepted (registered meanwhile, or password fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.anomalies.model import Anomaly

from .base import BaseRule, DeviceEvent

MAX_OPEN = 10_000  # devices with an open anomaly of this rule
_TYPES = {"unknown_mn": "unregistered_device", "bad_password": "auth_failure"}


class RefusedDevices(BaseRule):
    name = "refused_devices"

    def __init__(self, update_every_s: float = 300.0) -> None:
        super().__init__()
        self.update_every_s = update_every_s
        self.counts: dict[str, tuple[int, datetime]] = {}  # subject -> (frames, last update)

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        subject = event.device
        if event.kind == "contact":
            anomaly = self.open.pop(subject, None)
            count = self.counts.pop(subject, (0, event.received_at))[0]
            if anomaly is None:
                return []
            since = anomaly.started_at
            return [
                anomaly.closed(
                    event.received_at,
                    summary=_summary(anomaly.type, subject, count, since)
                    + f" Accepted again from {event.received_at:%Y-%m-%d %H:%M} UTC.",
                    frames=count,
                )
            ]
        type_ = _TYPES[event.kind]
        count, last_update = self.counts.get(subject, (0, event.received_at))
        count += 1
        anomaly = self.open.get(subject)
        if anomaly is None and len(self.open) >= MAX_OPEN:
            return []  # bounded: refused frames are still counted in frames_rejected_total
        if anomaly is None:
            anomaly = Anomaly(
                type=type_,
                severity="warning",
                enterprise=event.enterprise or "unregistered",
                subject=subject,
                started_at=event.received_at,
                summary=_summary(type_, subject, count, event.received_at),
                evidence={
                    "frames": count,
                    "first_at": event.received_at.isoformat(),
                    "last_at": event.received_at.isoformat(),
                    "detail": event.detail,
                },
                rule=self.name,
                detected_at=event.received_at,
            )
            self.open[subject] = anomaly
            self.counts[subject] = (count, event.received_at)
            return [anomaly]
        self.counts[subject] = (count, last_update)
        if (event.received_at - last_update).total_seconds() < self.update_every_s:
            return []
        self.counts[subject] = (count, event.received_at)
        anomaly = anomaly.updated(
            event.received_at,
            summary=_summary(type_, subject, count, anomaly.started_at),
            frames=count,
            last_at=event.received_at.isoformat(),
            detail=event.detail,
        )
        self.open[subject] = anomaly
        return [anomaly]

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for anomaly in open_anomalies:
            self.open[anomaly.subject] = anomaly
            self.counts[anomaly.subject] = (
                int(anomaly.evidence.get("frames", 1)),
                anomaly.detected_at,
            )


def _summary(type_: str, subject: str, count: int, since: datetime) -> str:
    mn = subject.partition(":")[2]
    what = "from an unregistered MN" if type_ == "unregistered_device" else "with a wrong password"
    return f"{count} frame(s) {what} ({mn}) refused since {since:%Y-%m-%d %H:%M} UTC."
