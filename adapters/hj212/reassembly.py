"""Reassembly of split uploads (PNUM/PNO), keyed on (MN, CN, DataTime, PNUM). Pure, bounded.

Each sub-packet is stored and acknowledged on its own; the reassembler tells when all parts
of an upload have arrived, so that the rules judge the whole record, and hands back the
uploads that expired (or were evicted) incomplete, so that they are judged as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .cp import CpData
from .frame import Frame

Key = tuple[str, str, str, int]
C = TypeVar("C")


@dataclass(slots=True)
class _Pending(Generic[C]):
    frame: Frame  # the first part seen
    context: C
    parts: dict[int, CpData]
    first_seen: float


@dataclass(frozen=True, slots=True)
class Incomplete(Generic[C]):
    """An upload whose window ran out (or that was evicted) before all parts arrived."""

    frame: Frame
    context: C
    cp: CpData  # the parts that arrived, merged
    parts: tuple[int, ...]
    pnum: int


def _merge(parts: dict[int, CpData]) -> CpData:
    merged = CpData()
    for pno in sorted(parts):
        part = parts[pno]
        merged.params.update(part.params)
        for code, values in part.items.items():
            merged.items.setdefault(code, {}).update(values)
    return merged


@dataclass(slots=True)
class Reassembler(Generic[C]):
    """Collects sub-packets. Holds at most `max_pending` uploads; the oldest is evicted first.

    `context` is what the caller needs to judge an upload later (kept from its first part).
    """

    max_pending: int = 10000
    ttl_s: float = 600.0
    expired: int = 0
    invalid: int = 0  # sub-packets whose PNO is outside 1..PNUM
    _pending: OrderedDict[Key, _Pending[C]] = field(default_factory=OrderedDict)
    _evicted: list[Incomplete[C]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, frame: Frame, cp: CpData, now: float, context: C) -> CpData | None:
        """Add one sub-packet; return the merged data area when the upload is complete."""
        if frame.pnum is None or frame.pno is None or frame.pnum <= 1:
            return cp
        if not 1 <= frame.pno <= frame.pnum:
            self.invalid += 1
            return None
        key: Key = (frame.mn, frame.cn, cp.data_time or "", frame.pnum)
        entry = self._pending.get(key)
        if entry is None:
            while len(self._pending) >= self.max_pending:
                _, oldest = self._pending.popitem(last=False)
                self.expired += 1
                if len(self._evicted) < self.max_pending:  # bounded until the next expire()
                    self._evicted.append(_incomplete(oldest))
            entry = self._pending[key] = _Pending(frame, context, {}, now)
        entry.parts[frame.pno] = cp
        if len(entry.parts) < frame.pnum:
            return None
        del self._pending[key]
        return _merge(entry.parts)

    def expire(self, now: float) -> list[Incomplete[C]]:
        """Drop uploads older than the TTL; return them with those evicted since last time."""
        out, self._evicted = self._evicted, []
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if now - entry.first_seen < self.ttl_s:
                break
            del self._pending[key]
            self.expired += 1
            out.append(_incomplete(entry))
        return out


def _incomplete(entry: _Pending[C]) -> Incomplete[C]:
    pnum = entry.frame.pnum or len(entry.parts)
    return Incomplete(
        entry.frame, entry.context, _merge(entry.parts), tuple(sorted(entry.parts)), pnum
    )
