"""The finest interval a device sends of a series, for the rules that judge flow on it: real-time
values when it sends them, else minute, else hourly values (day values never). A finer
interval stands aside once it has not been seen for `STALE_AFTER` (event time): a device that
stops its real-time uploads is judged on its minute or hourly values again."""

from __future__ import annotations

from datetime import datetime, timedelta

FINEST_FIRST = ("rtd", "minute", "hour")
STALE_AFTER = {"rtd": timedelta(minutes=10), "minute": timedelta(minutes=30)}


class Finest:
    """Remembers, per key (a subject, an MN), when each interval was last seen."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], datetime] = {}

    def judged(self, key: str, interval: str, at: datetime) -> bool:
        """Whether a value of `interval` at `at` is judged: no finer interval of `key` was
        seen within its `STALE_AFTER` before `at` (or after it)."""
        if interval not in FINEST_FIRST:
            return False
        seen = self.last.get((key, interval))
        self.last[(key, interval)] = at if seen is None else max(seen, at)
        for finer in FINEST_FIRST[: FINEST_FIRST.index(interval)]:
            other = self.last.get((key, finer))
            if other is not None and at - other <= STALE_AFTER[finer]:
                return False  # the device sends finer values: those are judged
        return True
