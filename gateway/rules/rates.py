"""`low_transmission`: a data logger's transmission rate (传输率) or validity rate (有效率) for a
Beijing day, or a Beijing month, under its outlet's `min_transmission` / `min_validity` [0.9].

Rates as the plans count them, on hourly records: transmission = hours with a record / hours
expected; validity = hours whose every value is flagged N / hours expected that the source ran
(an hour flagged F, 停运, with no other flag than N, is a stopped hour: it counts for the
transmission and is left out of the validity). Hours are expected
from the first hourly record the device sent (since start-up), so its first day counts from
there; a device that never sent one is `device_offline`'s. A day is judged once the device's
clock (as `data_gap` keeps it: the latest time it showed, advanced by the wall time since, never
past the wall clock) is `judge_after_s` [2 h] past its end, so back-filled hours count; a month
when its last day is. Records arriving after that change nothing.

The anomaly is the period itself: it starts at the period's start and arrives closed at its end
 (subject `mn:{MN}/rates:day` or `mn:{MN}/rates:month`, so one per device and period),
with the counts, both rates, the thresholds and the missing and invalid hours in evidence.
Days are remembered for `KEEP_DAYS` [40] per device; a restart forgets them (the day of the
restart is judged from the first record after it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent, Point
from gateway.registry import Outlet, Registry

from .base import BaseRule, event_time
from .device_clock import DeviceClocks

BEIJING = ZoneInfo("Asia/Shanghai")
HOUR = timedelta(hours=1)
JUDGE_AFTER_S = 7200.0
KEEP_DAYS = 40
MAX_LISTED = 48  # missing or invalid hours listed in the evidence


@dataclass(slots=True)
class _Device:
    first_hour: datetime  # hours are expected from here
    # day -> hour -> "valid" (every value N), "stopped" (F and N only) or "invalid"
    hours: dict[date, dict[datetime, str]] = field(default_factory=dict)
    next_day: date | None = None  # the first day not judged yet
    month: dict[str, int] = field(default_factory=dict)  # counts of the month being judged


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BEIJING)


class LowTransmission(BaseRule):
    name = "low_transmission"
    measurements = frozenset({"emission"})

    def __init__(
        self, registry: Callable[[], Registry], *, judge_after_s: float = JUDGE_AFTER_S
    ) -> None:
        super().__init__()
        self.registry = registry
        self.judge_after = timedelta(seconds=judge_after_s)
        self.devices: dict[str, _Device] = {}
        self.clocks = DeviceClocks()

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        last: tuple[str, int] | None = None
        for point in points:
            interval = point.tag("interval")
            if interval not in ("hour", "minute"):
                continue
            mn = point.tag("mn") or ""
            if interval == "minute":  # only the clock: once a record
                if (mn, point.event_time_ns) == last or mn not in self.devices:
                    continue
                last = (mn, point.event_time_ns)
            hour = event_time(point)
            shown = hour + (HOUR if interval == "hour" else timedelta(0))
            device = self.devices.get(mn)
            if interval == "hour" and device is None:
                if self.registry().device(mn) is None:
                    continue
                device = self.devices[mn] = _Device(hour)
            if device is None:
                continue
            self.clocks.saw(mn, shown, detected_at)
            if interval == "hour":
                day = hour.astimezone(BEIJING).date()
                if device.next_day is not None and day < device.next_day:
                    continue  # judged already
                slot = device.hours.setdefault(day, {})
                slot[hour] = _worse(slot.get(hour, "valid"), point.field("flag"))
                for old in sorted(device.hours)[:-KEEP_DAYS]:
                    del device.hours[old]
        return []

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        mn = event.device.removeprefix("mn:")
        if event.kind == "contact" and mn in self.devices and event.device_time is not None:
            self.clocks.saw(mn, event.device_time, event.received_at)
        return []

    def on_tick(self, now: datetime) -> list[Anomaly]:
        out: list[Anomaly] = []
        registry = self.registry()
        for mn, device in self.devices.items():
            found = registry.device(mn)
            if found is None:
                continue
            device_now = self.clocks.now(mn, now)
            if device_now is None:
                continue
            day = device.next_day or device.first_hour.astimezone(BEIJING).date()
            while _day_start(day) + timedelta(days=1) + self.judge_after <= device_now:
                out += self._judge_day(mn, found.enterprise, found.outlet, device, day, now)
                day += timedelta(days=1)
                device.next_day = day
        return out

    def _judge_day(
        self, mn: str, enterprise: str, outlet: Outlet, device: _Device, day: date, now: datetime
    ) -> list[Anomaly]:
        start, end = _day_start(day), _day_start(day + timedelta(days=1))
        first = max(start, device.first_hour)
        expected = [first + HOUR * i for i in range(int((end - first) / HOUR))]
        seen = device.hours.pop(day, {})
        counts = {
            "expected": len(expected),
            "received": sum(1 for h in expected if h in seen),
            "valid": sum(1 for h in expected if seen.get(h) == "valid"),
            "stopped": sum(1 for h in expected if seen.get(h) == "stopped"),
        }
        missing = [h for h in expected if h not in seen]
        invalid = [h for h in expected if seen.get(h) == "invalid"]
        out: list[Anomaly] = []
        if expected:
            details = {"missing_hours_at": _listed(missing), "invalid_hours_at": _listed(invalid)}
            period = (start, end, day.isoformat())
            out += self._verdict(mn, enterprise, outlet, "day", period, counts, details, now)
        month = device.month
        for key, value in counts.items():
            month[key] = month.get(key, 0) + value
        if (day + timedelta(days=1)).month != day.month:  # the month's last day
            begin = _day_start(day.replace(day=1))
            period = (begin, end, f"{day:%Y-%m}")
            if month.get("expected"):
                out += self._verdict(mn, enterprise, outlet, "month", period, month, {}, now)
            device.month = {}
        return out

    def _verdict(
        self,
        mn: str,
        enterprise: str,
        outlet: Outlet,
        kind: str,
        period: tuple[datetime, datetime, str],
        counts: dict[str, int],
        details: dict[str, Any],
        now: datetime,
    ) -> list[Anomaly]:
        start, end, label = period
        transmission = counts["received"] / counts["expected"]
        running = counts["expected"] - counts["stopped"]
        validity = counts["valid"] / running if running else 1.0
        low = transmission < outlet.min_transmission or validity < outlet.min_validity
        if not low:
            return []
        anomaly = Anomaly(
            type="low_transmission",
            severity="alarm",
            enterprise=enterprise,
            subject=f"mn:{mn}/rates:{kind}",
            started_at=start,
            summary=f"Data logger {mn}: {label} transmission {transmission:.1%}, validity "
            f"{validity:.1%} of {counts['expected']} hours.",
            evidence={
                "mn": mn,
                "outlet": outlet.id,
                "period": kind,
                "period_label": label,
                "expected_hours": counts["expected"],
                "received_hours": counts["received"],
                "valid_hours": counts["valid"],
                "stopped_hours": counts["stopped"],
                "transmission_rate": round(transmission, 4),
                "validity_rate": round(validity, 4),
                "min_transmission": outlet.min_transmission,
                "min_validity": outlet.min_validity,
                **details,
            },
            rule=self.name,
            detected_at=now,
            as_of=end,
        )
        return [anomaly.closed(end)]


def _worse(state: str, flag: object) -> str:
    """An hour's state after one more of its values."""
    if state == "invalid" or flag not in ("N", "F"):
        return "invalid"
    return "stopped" if flag == "F" else state


def _listed(hours: list[datetime]) -> list[str]:
    return [h.isoformat() for h in hours[:MAX_LISTED]]
