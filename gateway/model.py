"""The gateway's internal record: a point bound for InfluxDB. Depends on nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

FieldValue = float | int | bool | str


class Point(NamedTuple):
    """One InfluxDB point. `event_time_ns` is the event time in UTC nanoseconds.

    A named tuple rather than a dataclass: points are made for every value received.
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    event_time_ns: int

    def tag(self, name: str) -> str | None:
        for key, value in self.tags:  # a loop: called for every point by every rule
            if key == name:
                return value
        return None

    def field(self, name: str) -> FieldValue | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of nanoseconds since the epoch (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# refused frames: an unregistered MN, a wrong PW, an encrypted CP area the registered SM4 key
# does not decrypt (`bad_key`), or one from a device the registry has no key for (`no_key`)
DeviceEventKind = Literal["contact", "unknown_mn", "bad_password", "bad_key", "no_key"]


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something an adapter saw of a device that is not data: contact, refused frames."""

    kind: DeviceEventKind
    device: str  # "mn:<MN>"
    received_at: datetime
    enterprise: str = ""
    detail: str = ""
    device_time: datetime | None = None  # the device's clock as the frame showed it (QN)
    address: str = ""  # where a refused frame came from: the peer's IP (TCP) or topic (MQTT)
