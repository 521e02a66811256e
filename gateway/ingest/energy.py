"""Interval energy from cumulative kWh counters: rollover, reset, disorder. Pure, no I/O."""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

EnergyKind = Literal["first", "normal", "rollover", "reset", "out_of_order", "negative"]

DEFAULT_MAX_METERS = 100_000
ROLLOVER_MAX_FRACTION = 0.1
RESET_NEAR_ZERO_KWH = 10.0
RESET_NEAR_ZERO_FRACTION = 0.01
REBASE_AFTER_NEGATIVES = 3


@dataclass(frozen=True, slots=True)
class EnergyDelta:
    """What one reading says about the interval since the meter's previous reading.

    `kwh` is primary-side energy (`raw_kwh` x ct x pt), `raw_kwh` the counter's own delta; both
    are None for `first`, `out_of_order` and `negative`, and never negative otherwise.
    `previous_*` is the reading the delta is taken from; `rebased` marks the `negative` reading
    that became the new baseline.
    """

    meter: str
    kind: EnergyKind
    kwh: float | None
    raw_kwh: float | None
    previous_time: datetime | None
    previous_kwh: float | None
    rebased: bool = False

    @property
    def flagged(self) -> bool:
        """True when the counter did something other than count up (worth a look)."""
        return self.kind in ("rollover", "reset", "negative")


@dataclass(frozen=True, slots=True)
class _Baseline:
    event_time: datetime
    kwh: float
    negatives: int = 0  # consecutive `negative` readings against this baseline


@dataclass(frozen=True, slots=True)
class _Counter:
    """How a meter's counter is read: its ratios and where it wraps."""

    ct_ratio: float = 1.0
    pt_ratio: float = 1.0
    rollover_at: float | None = None


def _step(
    meter: str, base: _Baseline | None, event_time: datetime, kwh: float, counter: _Counter
) -> tuple[EnergyDelta, _Baseline | None]:
    """One reading against the baseline: its delta and the baseline after it."""
    if base is None:
        return EnergyDelta(meter, "first", None, None, None, None), _Baseline(event_time, kwh)
    if event_time <= base.event_time:
        return EnergyDelta(meter, "out_of_order", None, None, base.event_time, base.kwh), base
    kind, raw = _classify(base.kwh, kwh, counter.rollover_at)
    if raw is None:
        negatives = base.negatives + 1
        rebased = negatives >= REBASE_AFTER_NEGATIVES
        after = (
            _Baseline(event_time, kwh)
            if rebased
            else _Baseline(base.event_time, base.kwh, negatives)
        )
        return EnergyDelta(meter, kind, None, None, base.event_time, base.kwh, rebased), after
    ratio = counter.ct_ratio * counter.pt_ratio
    delta = EnergyDelta(meter, kind, raw * ratio, raw, base.event_time, base.kwh)
    return delta, _Baseline(event_time, kwh)


class EnergyTracker:
    """The last accepted (event time, raw kWh) per meter, and the interval energy of each reading.

    Classification of a reading against the meter's baseline (raw counter values):

    - `first`: no baseline (new meter, or evicted): it becomes the baseline, no delta.
    - `out_of_order`: event time not after the baseline's (late, or a duplicate): no delta,
      baseline unchanged. Not an error.
    - `normal`: the counter did not go down: delta = new - previous.
    - `rollover`: the counter went down, `rollover_at` is set and the wrapped delta
      `rollover_at - previous + new` is at most ROLLOVER_MAX_FRACTION (10 %) of `rollover_at`
      (a larger "wrap" is more likely a reset or a glitch than one interval's consumption).
    - `reset`: the counter went down to "near zero", at most max(RESET_NEAR_ZERO_KWH = 10 kWh,
      RESET_NEAR_ZERO_FRACTION = 1 % of the previous reading): delta = new value (the counter
      restarted from zero). Checked after rollover.
    - `negative`: any other drop: invalid, no delta, the baseline is kept (a glitch must not
      count its drop back as energy). After REBASE_AFTER_NEGATIVES (3) consecutive negatives the
      latest one becomes the baseline (`rebased`), so a meter replaced by one that starts from a
      non-zero reading does not stay negative forever.

    Bounded: at most `max_meters` baselines (default 100,000, roughly 20 MB); when full, the
    meter read least recently is forgotten and its next reading is `first`.

    Not detected: an upward spike (a glitch to a huge value counts as a huge `normal` delta);
    judging plausibility against a meter's rated power is the rules' job.
    """

    def __init__(self, *, max_meters: int = DEFAULT_MAX_METERS) -> None:
        if max_meters < 1:
            raise ValueError(f"max_meters must be at least 1, got {max_meters}")
        self.max_meters = max_meters
        self._baselines: OrderedDict[str, _Baseline] = OrderedDict()

    def __len__(self) -> int:
        return len(self._baselines)

    def interval_energy(
        self,
        meter: str,
        event_time: datetime,
        kwh: float,
        *,
        ct_ratio: float = 1.0,
        pt_ratio: float = 1.0,
        rollover_at: float | None = None,
    ) -> EnergyDelta:
        """Classify a reading of `meter` (raw counter `kwh` at aware `event_time`) and advance
        the baseline. ValueError for arguments no validated payload or configuration produces."""
        _check(event_time, kwh, ct_ratio, pt_ratio, rollover_at)
        base = self._baselines.get(meter)
        delta, after = _step(
            meter, base, event_time, kwh, _Counter(ct_ratio, pt_ratio, rollover_at)
        )
        if after is not None and after is not base:
            self._baselines[meter] = after
        self._baselines.move_to_end(meter)
        while len(self._baselines) > self.max_meters:
            self._baselines.popitem(last=False)
        return delta


@dataclass(frozen=True, slots=True)
class _Taken:
    event_time: datetime
    kwh: float
    counter: _Counter
    delta: EnergyDelta
    after: _Baseline | None  # the baseline once this reading was taken


@dataclass(slots=True)
class _Window:
    before: _Baseline | None = None  # the baseline before the first kept reading
    taken: list[_Taken] = field(default_factory=list)  # by event time


Redone = tuple[datetime, EnergyDelta, EnergyDelta | None]  # time, delta, the one before


class EnergyHistory:
    """The interval energy of readings that may come in any order, as an `EnergyTracker`
    gives it taking them in the order of their time (readings of one time in the order they
    came): for a meter whose readings come from independent publishers (a cluster's ingestion
    nodes).

    The last `keep` readings of each meter are kept (default 12, an hour of 5-minute readings,
    about 2 KB a meter). A reading not before the last is classified as by the tracker; one
    before it is put in its place among the kept ones and the readings after it are classified
    again: `take` returns the reading's delta first, then those of the later readings that
    changed. Once older readings were let go, a reading before every kept one is
    `out_of_order`. Bounded as the tracker: `max_meters`, the least recently read forgotten.
    """

    def __init__(self, *, keep: int = 12, max_meters: int = DEFAULT_MAX_METERS) -> None:
        if keep < 1 or max_meters < 1:
            raise ValueError("keep and max_meters must be at least 1")
        self.keep = keep
        self.max_meters = max_meters
        self._meters: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._meters)

    def take(
        self,
        meter: str,
        event_time: datetime,
        kwh: float,
        *,
        ct_ratio: float = 1.0,
        pt_ratio: float = 1.0,
        rollover_at: float | None = None,
    ) -> list[Redone]:
        """The reading's (event time, delta, None), then (event time, delta, the delta given
        before) of each kept later reading whose delta it changed. ValueError as
        `EnergyTracker.interval_energy`."""
        _check(event_time, kwh, ct_ratio, pt_ratio, rollover_at)
        counter = _Counter(ct_ratio, pt_ratio, rollover_at)
        window = self._meters.get(meter)
        if window is None:
            window = self._meters[meter] = _Window()
            while len(self._meters) > self.max_meters:
                self._meters.popitem(last=False)
        self._meters.move_to_end(meter)
        taken = window.taken
        last = taken[-1].after if taken else window.before
        if not taken or event_time >= taken[-1].event_time:
            delta, after = _step(meter, last, event_time, kwh, counter)
            taken.append(_Taken(event_time, kwh, counter, delta, after))
            self._trim(window)
            return [(event_time, delta, None)]
        index = bisect.bisect_right([t.event_time for t in taken], event_time)
        if index == 0 and window.before is not None:  # before what is kept: too late
            base = window.before
            return [
                (
                    event_time,
                    EnergyDelta(meter, "out_of_order", None, None, base.event_time, base.kwh),
                    None,
                )
            ]
        previous = taken[index - 1].after if index else None  # before the first: no baseline
        delta, after = _step(meter, previous, event_time, kwh, counter)
        changed: list[Redone] = [(event_time, delta, None)]
        redone = [_Taken(event_time, kwh, counter, delta, after)]
        for old in taken[index:]:
            new_delta, after = _step(meter, after, old.event_time, old.kwh, old.counter)
            redone.append(_Taken(old.event_time, old.kwh, old.counter, new_delta, after))
            if new_delta != old.delta:
                changed.append((old.event_time, new_delta, old.delta))
        window.taken = taken[:index] + redone
        self._trim(window)
        return changed

    def _trim(self, window: _Window) -> None:
        while len(window.taken) > self.keep:
            window.before = window.taken.pop(0).after


def _classify(
    previous: float, new: float, rollover_at: float | None
) -> tuple[EnergyKind, float | None]:
    if new >= previous:
        return "normal", new - previous
    if rollover_at is not None:
        wrapped = rollover_at - previous + new
        if 0 <= wrapped <= ROLLOVER_MAX_FRACTION * rollover_at:
            return "rollover", wrapped
    if new <= max(RESET_NEAR_ZERO_KWH, RESET_NEAR_ZERO_FRACTION * previous):
        return "reset", new
    return "negative", None


def _check(
    event_time: datetime, kwh: float, ct: float, pt: float, rollover_at: float | None
) -> None:
    if event_time.utcoffset() is None:
        raise ValueError("event_time must be timezone-aware")
    if not (math.isfinite(kwh) and kwh >= 0):
        raise ValueError(f"kwh must be a finite number >= 0, got {kwh!r}")
    for name, ratio in (("ct_ratio", ct), ("pt_ratio", pt), ("rollover_at", rollover_at)):
        if ratio is not None and not (math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {ratio!r}")
