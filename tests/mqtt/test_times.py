"""Event times and dates: the accepted forms, the rejections, and agreement between forms."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.mqtt.errors import PayloadError
from adapters.mqtt.normalise import parse_date, parse_time

MIDNIGHT_UTC = datetime(2026, 1, 5, tzinfo=UTC)  # = 2026-01-05 08:00 Beijing


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-05T08:00:00",  # no offset: Beijing
        "2026-01-05 08:00:00",
        "2026-01-05T08:00",
        " 2026-01-05T08:00:00.000 ",
        "2026-01-05T08:00:00+08:00",
        "2026-01-05T08:00:00+0800",
        "2026-01-05T08:00:00+08",
        "2026-01-05T00:00:00Z",
        "2026-01-05t00:00:00z",
        "2026-01-04T19:00:00-05:00",
        "2026-01-05T05:30:00+05:30",
        1767571200000,
    ],
)
def test_accepted_forms_give_the_same_instant(value: object) -> None:
    result = parse_time(value)
    assert result == MIDNIGHT_UTC
    assert result.utcoffset() == timedelta(0)


def test_fractions_keep_microseconds_and_drop_below() -> None:
    assert parse_time("2026-01-05T08:00:00.123456789").microsecond == 123456
    assert parse_time("2026-01-05T08:00:00,5").microsecond == 500000
    assert parse_time(1767571200123).microsecond == 123000


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1767571200000.0, "schema"),  # a float is not integer epoch ms
        (True, "schema"),
        (None, "schema"),
        ([2026], "schema"),
        ("1767571200000", "value"),  # digit strings: epoch ms or yyyyMMddHHmmss?
        ("20260105080000", "value"),
        ("1.7675712e12", "value"),
        ("1767571200000.0", "value"),
        ("2026-01-05", "value"),  # a date is not an instant
        ("2026-02-30T08:00:00", "value"),
        ("2026-01-05T24:00:00", "value"),
        ("2026-01-05T08:00:60", "value"),
        ("2026-01-05T08:00:00+15:00", "value"),
        ("2026-01-05T08:00:00+08:75", "value"),
        ("1999-12-31T23:59:59Z", "value"),
        ("2000-01-01T07:59:59", "value"),  # Beijing, so still 1999 in UTC
        ("2100-01-01T00:00:00Z", "value"),
        ("9999-12-31T23:00:00-05:00", "value"),
        ("0000-01-01T00:00:00", "value"),
        ("２０２６-01-05T08:00:00", "value"),  # full-width digits are not ISO 8601
        ("2026-01-05T08:00:00 +08:00", "value"),
        (1767571200, "value"),  # epoch seconds
        (-1, "value"),
        (10**30, "value"),
        (4102444800000, "value"),  # 2100-01-01
    ],
)
def test_rejected_times(value: object, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_time(value)
    assert caught.value.reason == reason
    assert caught.value.message


def test_range_edges_are_inclusive_at_2000_and_exclusive_at_2100() -> None:
    assert parse_time(946684800000) == datetime(2000, 1, 1, tzinfo=UTC)
    assert parse_time(4102444799999) == datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse_time("2000-01-01T08:00:00") == datetime(2000, 1, 1, tzinfo=UTC)


instants = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))


def _iso_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@given(instants, offsets)
def test_offsets_beijing_local_and_epoch_ms_agree(moment: datetime, offset: timedelta) -> None:
    local = moment.astimezone(timezone(offset))
    beijing = moment.astimezone(timezone(timedelta(hours=8)))
    ms = f".{moment.microsecond // 1000:03d}"
    spellings: list[object] = [
        moment.strftime("%Y-%m-%dT%H:%M:%S") + ms + "Z",
        local.strftime("%Y-%m-%dT%H:%M:%S") + ms + _iso_offset(offset),
        local.strftime("%Y-%m-%dT%H:%M:%S") + ms + _iso_offset(offset).replace(":", ""),
        beijing.strftime("%Y-%m-%dT%H:%M:%S") + ms,
        beijing.strftime("%Y-%m-%d %H:%M:%S") + ms,
        (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
    ]
    assert {parse_time(spelling) for spelling in spellings} == {moment}


@given(st.integers(min_value=946684800000, max_value=4102444799999))
def test_every_epoch_ms_in_range_round_trips(ms: int) -> None:
    result = parse_time(ms)
    assert (result - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == ms


@pytest.mark.parametrize("value", ["20190301", "2019-03-01", "2019/03/01", " 2019-03-01 "])
def test_dates(value: str) -> None:
    assert parse_date(value) == date(2019, 3, 1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (20190301, "schema"),
        ("2019-03/01", "value"),
        ("2019-02-30", "value"),
        ("19490101", "value"),
        ("2100-01-01", "value"),
        ("2019-03-01T00:00:00", "value"),
        ("", "value"),
    ],
)
def test_rejected_dates(value: object, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_date(value)
    assert caught.value.reason == reason
