"""Transport figures from the gate data itself (`passages`): heavy users (用车大户) and the
clean-transport share.

- Heavy movements: passages of class `heavy`, entering and leaving, per Beijing day. An
  enterprise is a heavy user on a day with more than its threshold (`Enterprise.
  heavy_user_movements`, else the registry's `heavy_user_movements`, default 10).
- Clean-transport share: of the heavy entries, those of 国六 (stage `6`) or electric (fuel
  `electric`, or stage `d`); None without heavy entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from ..influx.reader import QueryError, SeriesReader
from ..registry import Enterprise, Registry
from .model import TransportStatus, TransportUse
from .passages import PassageCount, Unsupported, beijing_day, heavy_passages
from .period import BEIJING


def clean(count: PassageCount) -> bool:
    return count.stage in ("6", "d") or count.fuel == "electric"


def _per_day(counts: Iterable[PassageCount], enterprise: str) -> dict[date, int]:
    days: dict[date, int] = {}
    for c in counts:
        if c.enterprise == enterprise:
            days[c.day] = days.get(c.day, 0) + c.count
    return days


def _entries(counts: Iterable[PassageCount], enterprise: str) -> tuple[int, int]:
    """(heavy entries, clean ones) of `enterprise`."""
    mine = [c for c in counts if c.enterprise == enterprise and c.direction == "in"]
    return sum(c.count for c in mine), sum(c.count for c in mine if clean(c))


def use(
    ents: Sequence[Enterprise], registry: Registry, counts: Sequence[PassageCount]
) -> list[TransportUse]:
    """Per enterprise with gates: heavy movements, days as a heavy user, clean share."""
    out = []
    for e in ents:
        if not e.gates:
            continue
        threshold = registry.heavy_user_movements(e)
        days = _per_day(counts, e.id)
        entries, cleaner = _entries(counts, e.id)
        out.append(
            TransportUse(
                enterprise=e.id,
                name=e.name,
                heavy_movements=sum(days.values()),
                heavy_user_days=sum(1 for n in days.values() if n > threshold),
                heavy_user_movements=threshold,
                heavy_entries=entries,
                clean_entries=cleaner,
                clean_share=cleaner / entries if entries else None,
            )
        )
    return out


async def status(
    series: SeriesReader | None, registry: Registry, ent: Enterprise, now: datetime
) -> TransportStatus | None:
    """Heavy user on the last complete Beijing day, and this month's clean share so far;
    None without gates or when InfluxDB cannot be read (or counted: `passages`)."""
    if series is None or not ent.gates:
        return None
    today = now.astimezone(BEIJING).date()
    yesterday = today - timedelta(days=1)
    month_start = beijing_day(today.replace(day=1))[0]
    start = min(month_start, beijing_day(yesterday)[0])
    try:
        counts = await heavy_passages(series, [ent.id], start, now)
    except (QueryError, Unsupported):
        return None
    threshold = registry.heavy_user_movements(ent)
    moved = _per_day(counts, ent.id).get(yesterday, 0)
    entries, cleaner = _entries([c for c in counts if c.day >= today.replace(day=1)], ent.id)
    return TransportStatus(
        day=yesterday,
        heavy_movements=moved,
        heavy_user=moved > threshold,
        heavy_user_movements=threshold,
        month=today.strftime("%Y-%m"),
        heavy_entries=entries,
        clean_entries=cleaner,
        clean_share=cleaner / entries if entries else None,
    )
