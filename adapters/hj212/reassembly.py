"""Reassembly of split uploads (PNUM/PNO), keyed on (MN, CN, DataTime, PNUM). Pure, bounded.

Each sub-packet is stored and acknowledged on its own; the reassembler tells when all parts
of an upload have arrived (for consumers that need whole records) and which expired incomplete.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .cp import CpData
from .frame import Frame

Key = tuple[str, str, str, int]


@dataclass(slots=True)
class _Pending:
    parts: dict[int, CpData]
    first_seen: float


@dataclass(slots=True)
class Reassembler:
    """Collects sub-packets. Holds at most `max_pending` uploads; the oldest is evicted first."""

    max_pending: int = 10000
    ttl_s: float = 600.0
    expired: int = 0
    invalid: int = 0  # sub-packets whose PNO is outside 1..PNUM
    _pending: OrderedDict[Key, _Pending] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, frame: Frame, cp: CpData, now: float) -> CpData | None:
        """Add one sub-packet; return the merged data area when the upload is complete."""
        if frame.pnum is None or frame.pno is None:
            return cp
        if frame.pnum <= 1:
            return cp
        if not 1 <= frame.pno <= frame.pnum:
            self.invalid += 1
            return None
        key: Key = (frame.mn, frame.cn, cp.data_time or "", frame.pnum)
        entry = self._pending.get(key)
        if entry is None:
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.expired += 1
            entry = self._pending[key] = _Pending({}, now)
        entry.parts[frame.pno] = cp
        if len(entry.parts) < frame.pnum:
            return None
        del self._pending[key]
        merged = CpData()
        for pno in sorted(entry.parts):
            part = entry.parts[pno]
            merged.params.update(part.params)
            for code, values in part.items.items():
                merged.items.setdefault(code, {}).update(values)
        return merged

    def expire(self, now: float) -> int:
        """Drop uploads older than the TTL; return how many."""
        count = 0
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if now - entry.first_seen < self.ttl_s:
                break
            del self._pending[key]
            count += 1
        self.expired += count
        return count
