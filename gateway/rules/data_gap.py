"""`data_gap`: an expected hourly record is missing, seen when a later hour of the same device
arrives. The gateway then asks the device to back-fill the missing hours (HJ 212 2061 with
BeginTime/EndTime), at most one request outstanding per device, retried after
`retry_after_s` up to `max_attempts`. The anomaly closes as back-filled when every missing
hour has arrived (late or back-filled data alike).

Event time throughout; only the retry of a request looks at the wall clock. Silence with no
later hour is `device_offline`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.anomalies.model import Anomaly
from gateway.model import Point
from gateway.registry import Registry

from .base import BaseRule, event_time

HOUR = timedelta(hours=1)
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
    ) -> None:
        super().__init__()
        self.registry = registry
        self.request_backfill = request_backfill
        self.retry_after_s = retry_after_s
        self.max_attempts = max_attempts
        self.latest: dict[str, datetime] = {}  # MN -> latest hour seen
        self.seen: dict[str, set[datetime]] = {}  # MN -> hours seen (recent)
        self.requests: dict[str, _Request] = {}

    def on_points(self, points: Sequence[Point], detected_at: datetime) -> list[Anomaly]:
        hours: dict[str, set[datetime]] = {}
        for point in points:
            if point.tag("interval") == "hour":
                hours.setdefault(point.tag("mn") or "", set()).add(event_time(point))
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
        begin, end = last + HOUR, hour  # missing: [begin, end)
        missing = int((end - begin) / HOUR)
        anomaly = Anomaly(
            type="data_gap",
            severity="warning",
            enterprise=enterprise,
            subject=f"mn:{mn}",
            started_at=begin,
            summary=f"Data logger {mn} skipped {missing} hourly record(s) from "
            f"{begin:%Y-%m-%d %H:%M} UTC; back-fill requested.",
            evidence={
                "mn": mn,
                "missing_from": begin.isoformat(),
                "missing_until": end.isoformat(),
                "missing_hours": missing,
                "filled": [],
                "last_before": last.isoformat(),
                "first_after": hour.isoformat(),
                "backfill_requested": False,
            },
            rule=self.name,
            detected_at=detected_at,
            as_of=hour,
        )
        if self._request(mn, begin, end - HOUR, detected_at):
            anomaly = anomaly.updated(hour, backfill_requested=True)
        self.open[f"{mn}|{begin.isoformat()}"] = anomaly
        return [*out, anomaly]

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
        for mn, req in list(self.requests.items()):
            if (now - req.sent_at).total_seconds() < self.retry_after_s:
                continue
            if req.attempts >= self.max_attempts or self.request_backfill is None:
                del self.requests[mn]  # given up; the gap stays open
                continue
            if self.request_backfill(mn, "2061", req.begin, req.end):
                req.sent_at, req.attempts = now, req.attempts + 1
        return []

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        for gap in open_anomalies:
            self.open[f"{gap.evidence['mn']}|{gap.evidence['missing_from']}"] = gap
