"""`data_gap`: an expected hourly record is missing. Seen either way:

- a later hour of the same device arrives (the hours between are missing);
- the record is overdue: `due_after_s` [20 min] after its hour ended on the device's clock,
  it has not arrived. The device's clock is the latest time it showed (the QN of any frame,
  heartbeats included, and the times of its records), advanced by the wall time since it
  showed it: for a live device that is the wall clock, and a replayed day stays on its own
  clock. A logger that keeps talking (heartbeats, minute data) but sends no hourly record is
  caught this way; one that falls silent is caught too, beside `device_offline`.

Hourly records are expected from a device once it has sent one (since start, or an open gap
restored after a restart). The gateway asks the device to back-fill the missing hours (HJ 212
2061 with BeginTime/EndTime), at most one request outstanding per device, retried after
`retry_after_s` up to `max_attempts`. An overdue gap grows while hours stay missing, and one
gap is one anomaly whichever way it was seen. The anomaly closes as back-filled when every
missing hour has arrived (late or back-filled data alike).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent, Point
from gateway.registry import Registry

from .base import BaseRule, event_time

HOUR = timedelta(hours=1)
DUE_AFTER_S = 1200.0
KEEP_HOURS = 24 * 7  # hours remembered per device (bounded)

BackfillRequest = Callable[[str, str, datetime, datetime], bool]


@dataclass(slots=True)
class _Request:
    begin: datetime
    end: datetime  # the last missing hour's start (inclusive, as BeginTime/EndTime are)
    sent_at: datetime
    attempts: int


class DataGap(BaseRule):
    name = "data_gap"
    measurements = frozenset({"emission"})

    def __init__(
        self,
        registry: Callable[[], Registry],
        request_backfill: BackfillRequest | None,
        *,
        retry_after_s: float = 600.0,
        max_attempts: int = 3,
        due_after_s: float = DUE_AFTER_S,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.request_backfill = request_backfill
        self.retry_after_s = retry_after_s
        self.max_attempts = max_attempts
        self.due_after = timedelta(seconds=due_after_s)
        self.clocks: dict[str, tuple[datetime, datetime]] = {}  # MN -> (device time, wall)
        self.latest: dict[str, datetime] = {}  # MN -> latest hour seen
        self.seen: dict[str, set[datetime]] = {}  # MN -> hours seen (recent)
        self.requests: dict[str, _Request] = {}

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        hours: dict[str, set[datetime]] = {}
        for point in points:
            mn, interval = point.tag("mn") or "", point.tag("interval")
            if interval in ("hour", "minute"):  # its clock is at least past the record's time
                shown = event_time(point) + (HOUR if interval == "hour" else timedelta(0))
                self._saw(mn, shown, detected_at)
            if interval == "hour":
                hours.setdefault(mn, set()).add(event_time(point))
        out: list[Anomaly] = []
        for mn, found in hours.items():
            device = self.registry().device(mn)
            if device is None:
                continue
            for hour in sorted(found):
                out += self._hour(mn, device.enterprise, hour, detected_at)
        return out

    def _hour(
        self, mn: str, enterprise: str, hour: datetime, detected_at: datetime
    ) -> list[Anomaly]:
        seen = self.seen.setdefault(mn, set())
        if hour in seen:
            return []
        seen.add(hour)
        if len(seen) > KEEP_HOURS:
            for old in sorted(seen)[: len(seen) - KEEP_HOURS]:
                seen.discard(old)
        out = [a for a in self._fill(mn, hour) if a is not None]
        last = self.latest.get(mn)
        if last is None or hour <= last:
            self.latest[mn] = max(hour, last) if last else hour
            return out
        self.latest[mn] = hour
        if hour - last <= HOUR:
            return out
        begin = last + HOUR  # missing: [begin, hour)
        overdue = self._gap_at(mn, begin)
        if overdue is not None:  # seen overdue before: the same gap, now bounded by `hour`
            until = max(hour, datetime.fromisoformat(overdue.evidence["missing_until"]))
            return [*out, self._extend(overdue, until, hour, first_after=hour.isoformat())]
        gap = self._open(mn, enterprise, begin, hour, last, hour, detected_at, "later_hour")
        return [*out, gap]

    def _open(
        self,
        mn: str,
        enterprise: str,
        begin: datetime,
        end: datetime,
        last: datetime,
        as_of: datetime,
        detected_at: datetime,
        seen_by: str,
    ) -> Anomaly:
        """A new gap of the hours [begin, end), with a back-fill request when one can go."""
        missing = int((end - begin) / HOUR)
        how = "skipped" if seen_by == "later_hour" else "has not sent"
        anomaly = Anomaly(
            type="data_gap",
            severity="warning",
            enterprise=enterprise,
            subject=f"mn:{mn}",
            started_at=begin,
            summary=f"Data logger {mn} {how} {missing} hourly record(s) from "
            f"{begin:%Y-%m-%d %H:%M} UTC; back-fill requested.",
            evidence={
                "mn": mn,
                "missing_from": begin.isoformat(),
                "missing_until": end.isoformat(),
                "missing_hours": missing,
                "filled": [],
                "last_before": last.isoformat(),
                "first_after": end.isoformat() if seen_by == "later_hour" else None,
                "seen_by": seen_by,
                "due_after_s": self.due_after.total_seconds(),
                "backfill_requested": False,
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=as_of,
        )
        if self._request(mn, begin, end - HOUR, detected_at):
            anomaly = anomaly.updated(as_of, backfill_requested=True)
        self.open[f"{mn}|{begin.isoformat()}"] = anomaly
        return anomaly

    def _extend(
        self, gap: Anomaly, until: datetime, as_of: datetime, **evidence: object
    ) -> Anomaly:
        """The gap with its missing hours up to `until` (exclusive)."""
        mn = gap.evidence["mn"]
        begin = datetime.fromisoformat(gap.evidence["missing_from"])
        missing = int((until - begin) / HOUR)
        request = self.requests.get(mn)
        if request is not None and request.begin == begin:
            request.end = until - HOUR
        updated = gap.updated(
            max(as_of, gap.judged_until),
            summary=f"Data logger {mn} has not sent {missing} hourly record(s) from "
            f"{begin:%Y-%m-%d %H:%M} UTC; back-fill requested.",
            missing_until=until.isoformat(),
            missing_hours=missing,
            **evidence,
        )
        self.open[f"{mn}|{begin.isoformat()}"] = updated
        return updated

    def _gap_at(
        self, mn: str, hour: datetime, gaps: dict[str, list[Anomaly]] | None = None
    ) -> Anomaly | None:
        """The open gap of a device whose missing hours include `hour` (`gaps`: the open gaps
        by device, when the caller has them)."""
        mine = gaps.get(mn, []) if gaps is not None else self._gaps().get(mn, [])
        for gap in mine:
            begin = datetime.fromisoformat(gap.evidence["missing_from"])
            if begin <= hour < datetime.fromisoformat(gap.evidence["missing_until"]):
                return gap
        return None

    def _gaps(self) -> dict[str, list[Anomaly]]:
        by_mn: dict[str, list[Anomaly]] = {}
        for gap in self.open.values():
            by_mn.setdefault(gap.evidence["mn"], []).append(gap)
        return by_mn

    # -- the device's clock --------------------------------------------------------------

    def _saw(self, mn: str, device_time: datetime, wall: datetime) -> None:
        known = self.clocks.get(mn)
        if known is None or device_time > known[0]:
            self.clocks[mn] = (device_time, wall)

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        if event.kind == "contact" and event.device_time is not None:
            self._saw(event.device.removeprefix("mn:"), event.device_time, event.received_at)
        return []

    def _overdue(self, now: datetime) -> list[Anomaly]:
        """Gaps of the hours whose record is `due_after` late on the device's clock."""
        out: list[Anomaly] = []
        gaps = self._gaps()
        for mn, last in self.latest.items():
            clock = self.clocks.get(mn)
            if clock is None:
                continue
            # never ahead of the wall clock: a device whose clock runs fast raises nothing early
            device_now = min(clock[0] + max(now - clock[1], timedelta(0)), now)
            begin = last + HOUR
            overdue = int((device_now - self.due_after - begin) / HOUR)  # hours ended that long
            if overdue < 1:
                continue
            until = begin + overdue * HOUR
            gap = self._gap_at(mn, begin, gaps)
            if gap is None:
                device = self.registry().device(mn)
                if device is not None:
                    out.append(
                        self._open(
                            mn, device.enterprise, begin, until, last, device_now, now, "overdue"
                        )
                    )
            elif datetime.fromisoformat(gap.evidence["missing_until"]) < until:
                out.append(self._extend(gap, until, device_now))
        return out

    def _fill(self, mn: str, hour: datetime) -> list[Anomaly | None]:
        """Hours arriving inside an open gap: record them; close the gap once all are in."""
        out: list[Anomaly | None] = []
        for key, gap in list(self.open.items()):
            if not key.startswith(mn + "|"):
                continue
            begin = datetime.fromisoformat(gap.evidence["missing_from"])
            end = datetime.fromisoformat(gap.evidence["missing_until"])
            if not begin <= hour < end:
                continue
            filled = sorted({*gap.evidence["filled"], hour.isoformat()})
            if len(filled) < gap.evidence["missing_hours"]:
                self.open[key] = gap.updated(max(hour, gap.judged_until), filled=filled)
                out.append(self.open[key])
                continue
            del self.open[key]
            self.requests.pop(mn, None)
            out.append(
                gap.closed(
                    end,
                    summary=f"Data logger {mn}: the {len(filled)} missing hourly record(s) from "
                    f"{begin:%Y-%m-%d %H:%M} UTC arrived later (back-filled).",
                    filled=filled,
                    closed_as="backfilled",
                )
            )
        return out

    def _request(self, mn: str, begin: datetime, end: datetime, now: datetime) -> bool:
        if self.request_backfill is None or mn in self.requests:
            return False  # at most one outstanding request per device
        sent = self.request_backfill(mn, "2061", begin, end)
        if sent:
            self.requests[mn] = _Request(begin, end, now, 1)
        return sent

    def on_tick(self, now: datetime) -> list[Anomaly]:
        out = self._overdue(now)
        for mn, req in list(self.requests.items()):
            if (now - req.sent_at).total_seconds() < self.retry_after_s:
                continue
            if req.attempts >= self.max_attempts or self.request_backfill is None:
                del self.requests[mn]  # given up; the gap stays open
                continue
            if self.request_backfill(mn, "2061", req.begin, req.end):
                req.sent_at, req.attempts = now, req.attempts + 1
        return out

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for gap in open_anomalies:
            mn, begin = gap.evidence["mn"], gap.evidence["missing_from"]
            self.open[f"{mn}|{begin}"] = gap
            last = datetime.fromisoformat(gap.evidence["last_before"])
            self.latest[mn] = max(last, self.latest.get(mn, last))
