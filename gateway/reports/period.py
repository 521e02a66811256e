"""The period of a report: one Beijing day or one Beijing month, as a half-open UTC-aware
interval `[start, end)`, and how many of its hours have ended at a given moment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
HOUR = timedelta(hours=1)

Kind = Literal["day", "month"]

FIRST_YEAR, LAST_YEAR = 2000, 2099  # the years a report may be asked for

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Period:
    """A Beijing day or month; `start` and `end` are Beijing-time aware datetimes."""

    kind: Kind
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        """`2026-03-10` for a day, `2026-03` for a month."""
        return self.start.strftime("%Y-%m-%d" if self.kind == "day" else "%Y-%m")

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def hours_ended(self, now: datetime) -> int:
        """Hours of the period that have ended at `now` (all of them for a past period)."""
        if now >= self.end:
            return self.hours
        if now <= self.start:
            return 0
        return int((now - self.start) / HOUR)

    def until(self, now: datetime) -> datetime:
        """The end of the period's ended hours at `now`: `end` for a past period."""
        return self.start + self.hours_ended(now) * HOUR

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def day(value: date) -> Period:
    start = datetime(value.year, value.month, value.day, tzinfo=BEIJING)
    end = datetime.combine(value + timedelta(days=1), datetime.min.time(), tzinfo=BEIJING)
    return Period("day", start, end)


def month(year: int, month_: int) -> Period:
    start = datetime(year, month_, 1, tzinfo=BEIJING)
    nxt = (year + 1, 1) if month_ == 12 else (year, month_ + 1)
    return Period("month", start, datetime(nxt[0], nxt[1], 1, tzinfo=BEIJING))


def _year(text: str) -> None:
    if not FIRST_YEAR <= int(text[:4]) <= LAST_YEAR:
        raise ValueError(f"{text!r}: the year must be {FIRST_YEAR} to {LAST_YEAR}")


def parse_day(text: str) -> Period:
    """`YYYY-MM-DD` as a Beijing day of the years `FIRST_YEAR` to `LAST_YEAR`; ValueError
    when it is not one."""
    if not _DAY.match(text):
        raise ValueError(f"{text!r} is not a day (YYYY-MM-DD)")
    found = date.fromisoformat(text)
    _year(text)
    return day(found)


def parse_month(text: str) -> Period:
    """`YYYY-MM` as a Beijing month of the years `FIRST_YEAR` to `LAST_YEAR`; ValueError
    when it is not one."""
    if not _MONTH.match(text):
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    if not 1 <= int(text[5:]) <= 12:
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    _year(text)
    return month(int(text[:4]), int(text[5:]))


def month_of(moment: datetime) -> str:
    """`YYYY-MM` of the Beijing month holding `moment`."""
    return moment.astimezone(BEIJING).strftime("%Y-%m")
