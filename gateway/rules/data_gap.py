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

Minute (2051) and daily (2031) records are judged the same way, each as a track of its own, for
a device whose outlet lists them in `records` (once it has sent one): one record every
`minute_interval_s` [600 s], or every Beijing day; due 2 periods after a minute record's period
ended, 2 h after a day's; back-filled with 2051 / 2031. Their gaps are anomalies of their own
(subject `mn:<MN>/minute` or `mn:<MN>/day`, evidence `interval`, counts in `missing_records`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import DeviceEvent, Point
from gateway.registry import Registry

from .base import BaseRule, event_time
from .device_clock import DeviceClocks

HOUR = timedelta(hours=1)
DUE_AFTER_S = 1200.0
KEEP_HOURS = 24 * 7  # hours remembered per device (bounded)

BackfillRequest = Callable[[str, str, datetime, datetime], bool]


@dataclass(frozen=True, slots=True)
class Period:
    """What a track of a device's records is: their interval, spacing and back-fill command."""

    interval: str  # the `interval` tag: hour, minute or day
    step: timedelta
    cn: str
    words: str  # how summaries name one record


HOURLY = Period("hour", HOUR, "2061", "hourly record")
DAILY = Period("day", timedelta(days=1), "2031", "daily record")
DAY_DUE_AFTER = timedelta(hours=2)


def minutely(interval_s: float) -> Period:
    return Period("minute", timedelta(seconds=interval_s), "2051", "minute record")


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
        self.clocks = DeviceClocks()
        # per track: the MN for hourly records, `MN/minute` and `MN/day` for the others
        self.latest: dict[str, datetime] = {}  # track -> latest record time seen
        self.seen: dict[str, set[datetime]] = {}  # track -> record times seen (recent)
        self.requests: dict[str, _Request] = {}  # track -> its outstanding back-fill
        self.periods: dict[str, Period] = {}  # track -> its period

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        records: dict[str, set[datetime]] = {}
        registry = self.registry()
        last: tuple[str, str | None, int] | None = None
        for point in points:
            mn, interval = point.tag("mn") or "", point.tag("interval")
            if (mn, interval, point.event_time_ns) == last:
                continue  # another value of the same record: seen already
            last = (mn, interval, point.event_time_ns)
            if interval in ("hour", "minute"):  # its clock is at least past the record's time
                shown = event_time(point) + (HOUR if interval == "hour" else timedelta(0))
                self.clocks.saw(mn, shown, detected_at)
            if interval == "hour":
                records.setdefault(mn, set()).add(event_time(point))
            elif interval in ("minute", "day"):
                device = registry.device(mn)
                if device is not None and interval in device.outlet.records:
                    track = f"{mn}/{interval}"
                    self.periods[track] = (
                        DAILY if interval == "day" else minutely(device.outlet.minute_interval_s)
                    )
                    records.setdefault(track, set()).add(event_time(point))
        out: list[Anomaly] = []
        for track, found in records.items():
            device = registry.device(_mn(track))
            if device is None:
                continue
            for at in sorted(found):
                out += self._record(track, device.enterprise, at, detected_at)
        return out

    def _period(self, track: str) -> Period:
        return self.periods.get(track, HOURLY)

    def _record(
        self, track: str, enterprise: str, at: datetime, detected_at: datetime
    ) -> list[Anomaly]:
        seen = self.seen.setdefault(track, set())
        if at in seen:
            return []
        seen.add(at)
        if len(seen) > KEEP_HOURS:
            for old in sorted(seen)[: len(seen) - KEEP_HOURS]:
                seen.discard(old)
        out = [a for a in self._fill(track, at) if a is not None]
        last = self.latest.get(track)
        if last is None or at <= last:
            self.latest[track] = max(at, last) if last else at
            return out
        self.latest[track] = at
        step = self._period(track).step
        if at - last <= step:
            return out
        begin = last + step  # missing: [begin, at)
        overdue = self._gap_at(track, begin)
        if overdue is not None:  # seen overdue before: the same gap, now bounded by `at`
            until = max(at, datetime.fromisoformat(overdue.evidence["missing_until"]))
            return [*out, self._extend(overdue, until, at, first_after=at.isoformat())]
        gap = self._open(track, enterprise, begin, at, last, at, detected_at, "later_hour")
        return [*out, gap]

    def _open(
        self,
        track: str,
        enterprise: str,
        begin: datetime,
        end: datetime,
        last: datetime,
        as_of: datetime,
        detected_at: datetime,
        seen_by: str,
    ) -> Anomaly:
        """A new gap of the records [begin, end), with a back-fill request when one can go."""
        period = self._period(track)
        mn = _mn(track)
        missing = int((end - begin) / period.step)
        how = "skipped" if seen_by == "later_hour" else "has not sent"
        evidence: dict[str, object] = {
            "mn": mn,
            "missing_from": begin.isoformat(),
            "missing_until": end.isoformat(),
        }
        evidence |= _count(period, missing)
        evidence |= {
            "filled": [],
            "last_before": last.isoformat(),
            "first_after": end.isoformat() if seen_by == "later_hour" else None,
            "seen_by": seen_by,
            "due_after_s": self._due(period).total_seconds(),
            "backfill_requested": False,
        }
        anomaly = Anomaly(
            type="data_gap",
            severity="warning",
            enterprise=enterprise,
            subject=f"mn:{track}",
            started_at=begin,
            summary=f"Data logger {mn} {how} {missing} {period.words}(s) from "
            f"{begin:%Y-%m-%d %H:%M} UTC; back-fill requested.",
            evidence=evidence,
            rule=self.name,
            detected_at=detected_at,
            as_of=as_of,
        )
        if self._request(track, begin, end - period.step, detected_at):
            anomaly = anomaly.updated(as_of, backfill_requested=True)
        self.open[f"{track}|{begin.isoformat()}"] = anomaly
        return anomaly

    def _due(self, period: Period) -> timedelta:
        if period.interval == "hour":
            return self.due_after
        return DAY_DUE_AFTER if period.interval == "day" else 2 * period.step

    def _extend(
        self, gap: Anomaly, until: datetime, as_of: datetime, **evidence: object
    ) -> Anomaly:
        """The gap with its missing records up to `until` (exclusive)."""
        track = _track(gap)
        period = self._period(track)
        mn = gap.evidence["mn"]
        begin = datetime.fromisoformat(gap.evidence["missing_from"])
        missing = int((until - begin) / period.step)
        request = self.requests.get(track)
        if request is not None and request.begin == begin:
            request.end = until - period.step
        updated = gap.updated(
            max(as_of, gap.judged_until),
            summary=f"Data logger {mn} has not sent {missing} {period.words}(s) from "
            f"{begin:%Y-%m-%d %H:%M} UTC; back-fill requested.",
            missing_until=until.isoformat(),
            **_count(period, missing),
            **evidence,
        )
        self.open[f"{track}|{begin.isoformat()}"] = updated
        return updated

    def _gap_at(
        self, track: str, at: datetime, gaps: dict[str, list[Anomaly]] | None = None
    ) -> Anomaly | None:
        """The open gap of a track whose missing records include `at` (`gaps`: the open gaps
        by track, when the caller has them)."""
        mine = gaps.get(track, []) if gaps is not None else self._gaps().get(track, [])
        for gap in mine:
            begin = datetime.fromisoformat(gap.evidence["missing_from"])
            if begin <= at < datetime.fromisoformat(gap.evidence["missing_until"]):
                return gap
        return None

    def _gaps(self) -> dict[str, list[Anomaly]]:
        by_track: dict[str, list[Anomaly]] = {}
        for gap in self.open.values():
            by_track.setdefault(_track(gap), []).append(gap)
        return by_track

    # -- the device's clock --------------------------------------------------------------

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        if event.kind == "contact" and event.device_time is not None:
            self.clocks.saw(event.device.removeprefix("mn:"), event.device_time, event.received_at)
        return []

    def _overdue(self, now: datetime) -> list[Anomaly]:
        """Gaps of the records `due_after` late on the device's clock."""
        out: list[Anomaly] = []
        gaps = self._gaps()
        for track, last in self.latest.items():
            device_now = self.clocks.now(_mn(track), now)
            if device_now is None:
                continue
            period = self._period(track)
            begin = last + period.step
            # periods ended that long ago
            overdue = int((device_now - self._due(period) - begin) / period.step)
            if overdue < 1:
                continue
            until = begin + overdue * period.step
            gap = self._gap_at(track, begin, gaps)
            if gap is None:
                device = self.registry().device(_mn(track))
                if device is not None:
                    out.append(
                        self._open(
                            track, device.enterprise, begin, until, last, device_now, now, "overdue"
                        )
                    )
            elif datetime.fromisoformat(gap.evidence["missing_until"]) < until:
                out.append(self._extend(gap, until, device_now))
        return out

    def _fill(self, track: str, at: datetime) -> list[Anomaly | None]:
        """Records arriving inside an open gap: note them; close the gap once all are in."""
        out: list[Anomaly | None] = []
        period = self._period(track)
        for key, gap in list(self.open.items()):
            if not key.startswith(track + "|"):
                continue
            begin = datetime.fromisoformat(gap.evidence["missing_from"])
            end = datetime.fromisoformat(gap.evidence["missing_until"])
            if not begin <= at < end:
                continue
            filled = sorted({*gap.evidence["filled"], at.isoformat()})
            missing = int((end - begin) / period.step)
            if len(filled) < missing:
                self.open[key] = gap.updated(max(at, gap.judged_until), filled=filled)
                out.append(self.open[key])
                continue
            del self.open[key]
            self.requests.pop(track, None)
            out.append(
                gap.closed(
                    end,
                    summary=f"Data logger {_mn(track)}: the {len(filled)} missing "
                    f"{period.words}(s) from {begin:%Y-%m-%d %H:%M} UTC arrived later "
                    "(back-filled).",
                    filled=filled,
                    closed_as="backfilled",
                )
            )
        return out

    def _request(self, track: str, begin: datetime, end: datetime, now: datetime) -> bool:
        if self.request_backfill is None or track in self.requests:
            return False  # at most one outstanding request per track
        sent = self.request_backfill(_mn(track), self._period(track).cn, begin, end)
        if sent:
            self.requests[track] = _Request(begin, end, now, 1)
        return sent

    def on_tick(self, now: datetime) -> list[Anomaly]:
        out = self._overdue(now)
        for track, req in list(self.requests.items()):
            if (now - req.sent_at).total_seconds() < self.retry_after_s:
                continue
            if req.attempts >= self.max_attempts or self.request_backfill is None:
                del self.requests[track]  # given up; the gap stays open
                continue
            cn = self._period(track).cn
            if self.request_backfill(_mn(track), cn, req.begin, req.end):
                req.sent_at, req.attempts = now, req.attempts + 1
        return out

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        registry = self.registry()
        for gap in open_anomalies:
            track, begin = _track(gap), gap.evidence["missing_from"]
            interval = gap.evidence.get("interval", "hour")
            device = registry.device(_mn(track))
            if interval == "day":
                self.periods[track] = DAILY
            elif interval == "minute" and device is not None:
                self.periods[track] = minutely(device.outlet.minute_interval_s)
            self.open[f"{track}|{begin}"] = gap
            last = datetime.fromisoformat(gap.evidence["last_before"])
            self.latest[track] = max(last, self.latest.get(track, last))


def _mn(track: str) -> str:
    return track.partition("/")[0]


def _track(gap: Anomaly) -> str:
    """A gap's track: its MN for hourly records, `MN/<interval>` for the others."""
    interval = gap.evidence.get("interval", "hour")
    mn = str(gap.evidence["mn"])
    return mn if interval == "hour" else f"{mn}/{interval}"


def _count(period: Period, missing: int) -> dict[str, object]:
    """The missing count as the evidence keeps it: `missing_hours` for hourly records (as
    stored since the first release), `interval` and `missing_records` for the others."""
    if period.interval == "hour":
        return {"missing_hours": missing}
    return {"interval": period.interval, "missing_records": missing}
