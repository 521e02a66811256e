"""Daily completeness (the day's transmission rate) of every registered device and the
`device_status` points that carry it, with `online`, to InfluxDB.

Completeness of a local day = for a data logger, hourly records received for its hours / hours
of the day that have ended (24 for a past day); for a meter, its `report_interval_s` slots with
a reading / slots ended; for a gate, the hours outside its quiet hours with a passage / those
ended. Day boundaries are Beijing time by default.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from gateway.model import Point, to_ns
from gateway.registry import Registry
from gateway.rules.data_gap import DataGap
from gateway.rules.offline import DeviceOffline

BEIJING = ZoneInfo("Asia/Shanghai")


def day_start(now: datetime, tz: tzinfo = BEIJING) -> datetime:
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def completeness(hours_seen: set[datetime], start: datetime, now: datetime) -> float | None:
    """Share of the day's ended hours that have a record; None before the first hour ends."""
    ended = min(24, int((now - start).total_seconds() // 3600))
    if ended <= 0:
        return None
    expected = [start + timedelta(hours=h) for h in range(ended)]
    return sum(1 for h in expected if h in hours_seen) / ended


class DeviceStatusPoints:
    """Builds the `device_status` points of every registered device for the current day."""

    def __init__(
        self, registry: Callable[[], Registry], offline: DeviceOffline, gaps: DataGap
    ) -> None:
        self.registry = registry
        self.offline = offline
        self.gaps = gaps

    def today(self, mn: str, now: datetime) -> float | None:
        start = day_start(now)
        return completeness(self.gaps.seen.get(mn, set()), start, now)

    def points(self, now: datetime, enterprises: Collection[str] | None = None) -> list[Point]:
        """The points of every registered device, or of those of `enterprises`."""
        at = to_ns(now.replace(second=0, microsecond=0))
        out = []
        for ent in self.registry().data.enterprises:
            if enterprises is not None and ent.id not in enterprises:
                continue
            for outlet in ent.outlets:
                fields: list[tuple[str, float | bool]] = []
                online = self.offline.online(f"mn:{outlet.mn}")
                if online is not None:
                    fields.append(("online", online))
                rate = self.today(outlet.mn, now)
                if rate is not None:
                    fields.append(("completeness", rate))
                if fields:
                    tags = (("kind", "hj212"), ("device", outlet.mn), ("enterprise", ent.id))
                    out.append(Point("device_status", tags, tuple(fields), at))
            others = [("meter", m.id) for m in ent.meters] + [("gate", g.id) for g in ent.gates]
            for kind, ident in others:
                subject = f"{kind}:{ent.id}/{ident}"
                fields = []
                online = self.offline.online(subject)
                if online is not None:
                    fields.append(("online", online))
                share = self.offline.completeness(subject, now)
                if share is not None:
                    fields.append(("completeness", share))
                if fields:
                    tags = (("kind", kind), ("device", ident), ("enterprise", ent.id))
                    out.append(Point("device_status", tags, tuple(fields), at))
        return out
