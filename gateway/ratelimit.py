"""Per-key rate limiting of log lines (so one broken device cannot flood the log)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class LogLimiter:
    """Allows one event per key per `interval_s`; remembers at most `max_keys` keys.

    `allow` returns how many events were suppressed since the last allowed one (>= 0), or
    -1 when this event must be suppressed. `allowed` and `suppressed` count every event so
    far. Choose keys the source of the events cannot multiply (its address, not a name it
    sends): a new key per event is a line per event.
    """

    def __init__(self, interval_s: float, max_keys: int = 10000) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.allowed = 0
        self.suppressed = 0
        self._last: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def allow(self, key: Hashable, now: float) -> int:
        entry = self._last.get(key)
        if entry is not None and now - entry[0] < self.interval_s:
            self._last[key] = (entry[0], entry[1] + 1)
            self.suppressed += 1
            return -1
        self.allowed += 1
        suppressed = entry[1] if entry is not None else 0
        self._last[key] = (now, 0)
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return suppressed
