"""传输率 (transmission rate) of each HJ 212 device over a period (pure): the distinct hours
with an hourly record, over the hours of the period that have ended."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .model import DeviceRate, Transmission
from .period import Period

THRESHOLD = 0.9  # the national target for key enterprises (数据传输有效率 >= 90 %)


@dataclass(frozen=True, slots=True)
class DeviceRef:
    enterprise: str
    name: str  # the enterprise's
    outlet: str
    mn: str


def hour_of(moment: datetime) -> datetime:
    """The start of the hour holding `moment` (Beijing and UTC hours are the same)."""
    return moment.replace(minute=0, second=0, microsecond=0)


def received(times: Collection[datetime], period: Period, now: datetime) -> int:
    """Distinct hours of the period's ended hours that hold one of `times` or more."""
    start, until = period.start, period.until(now)
    return len({hour_of(t) for t in times if start <= t < until})


def transmission(
    devices: Sequence[DeviceRef],
    times: Mapping[str, Collection[datetime]],
    period: Period,
    now: datetime,
    threshold: float = THRESHOLD,
) -> Transmission:
    """The rate of every device (`times`: MN -> times of its stored hourly records), lowest
    first; those under `threshold` listed again in `below`. A device with no record has 0."""
    hours = period.hours_ended(now)
    rates = []
    for d in devices:
        got = received(times.get(d.mn, ()), period, now)
        rate = got / hours if hours else None
        rates.append(
            DeviceRate(
                enterprise=d.enterprise,
                name=d.name,
                outlet=d.outlet,
                mn=d.mn,
                received=got,
                hours=hours,
                rate=None if rate is None else round(rate, 4),
            )
        )
    rates.sort(key=lambda r: (r.rate if r.rate is not None else 2.0, r.enterprise, r.outlet))
    below = [r for r in rates if r.rate is not None and r.received < threshold * r.hours]
    return Transmission(threshold=threshold, hours=hours, devices=rates, below=below)
