"""The QNs of accepted uploads, so that a QN a device reuses for other content is refused.

A record of a device is its (MN, QN, CN, PNO, DataTime). A resend of it, byte for byte, is
answered again (the device missed the 9014); the same key with other bytes within `window_s`
is a corrupted frame or a forgery that passed the CRC, and is refused. At most `max_entries`
keys are kept (oldest dropped first), each for `window_s`. Pure: the caller gives the time.
"""

from __future__ import annotations

from collections import OrderedDict

from .cp import CpData
from .frame import Frame

Key = tuple[str, str, str, int, str]
MAX_ENTRIES = 200_000


class QnMemory:
    def __init__(self, window_s: float, max_entries: int = MAX_ENTRIES) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[Key, tuple[float, int]] = OrderedDict()  # -> (when, bytes' hash)

    def key(self, frame: Frame, cp: CpData) -> Key | None:
        """What makes one record of a device; None when there is no QN or no window."""
        if frame.qn is None or self.window_s <= 0:
            return None
        return (frame.mn, frame.qn, frame.cn, frame.pno or 0, cp.data_time or "")

    def reused(self, key: Key, digest: int, now: float) -> bool:
        """Whether `key` was accepted within the window with bytes of another hash."""
        entry = self._seen.get(key)
        return entry is not None and now - entry[0] < self.window_s and entry[1] != digest

    def remember(self, key: Key, digest: int, now: float) -> None:
        """Keep an accepted upload's key; forget those past the window or the bound."""
        seen = self._seen
        seen[key] = (now, digest)
        seen.move_to_end(key)
        horizon = now - self.window_s
        while seen and (len(seen) > self.max_entries or next(iter(seen.values()))[0] <= horizon):
            seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
