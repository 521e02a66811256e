"""What every rule is: points (and device events) in, anomalies out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent, Point

__all__ = ["DeviceEvent", "Rule"]


class Rule(Protocol):
    name: str

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        """Anomalies opened, updated or closed by durable points (event time)."""

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        """Anomalies from non-data device events (refused frames, contact)."""

    def on_tick(self, now: datetime) -> list[Anomaly]:
        """Anomalies judged on the wall clock (only silence is)."""

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        """Take back the open anomalies of this rule after a restart."""
