"""The finest interval a device sends of a series, for the rules that judge flow on it: real-time
values when it sends them, else minute, else hourly values (day values never)."""

from __future__ import annotations

FINEST_FIRST = ("rtd", "minute", "hour")


class Finest:
    """Remembers, per key (a subject, an MN), the finest interval seen so far."""

    def __init__(self) -> None:
        self.rank: dict[str, int] = {}  # key -> index in FINEST_FIRST

    def judged(self, key: str, interval: str) -> bool:
        """Whether a value of `interval` is judged: it is the finest seen for `key`."""
        if interval not in FINEST_FIRST:
            return False
        rank = FINEST_FIRST.index(interval)
        if rank > self.rank.setdefault(key, rank):
            return False  # the device sends finer values: those are judged
        self.rank[key] = rank
        return True
