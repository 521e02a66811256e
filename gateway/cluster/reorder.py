"""A partition's entries in each device's own order. Pure, no I/O.

Two ingestion nodes publish to the rules stream independently: the shared MQTT subscription
hands a meter's readings to them in turn, and each publishes its batch when its points are
durable, so a partition may hold a meter's 10:05 reading before its 10:00 one. A rule worker
holds what it hears for `reorder_s` and judges it through `in_device_order`: each device's
entries go in event-time order, into the positions that device's entries held, so the order
between devices (and every entry without a device, such as a device event) stays as heard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.model import DeviceEvent, Point

T = TypeVar("T")
Entry = Sequence[Point] | DeviceEvent
Source = tuple[str, str, str, str]


def source_of(entry: Entry) -> Source | None:
    """The device whose readings `entry` holds: the measurement with the logger's MN, or the
    enterprise with its meter or gate; None for a device event, or points of no device."""
    if isinstance(entry, DeviceEvent) or not entry:
        return None
    first = entry[0]
    mn = first.tag("mn") or ""
    enterprise = first.tag("enterprise") or ""
    device = first.tag("meter") or first.tag("gate") or ""
    if not mn and not device:
        return None
    return (first.measurement, mn, enterprise, device)


def time_of(entry: Entry) -> int:
    """The earliest event time (ns) of an entry's points; 0 for a device event."""
    if isinstance(entry, DeviceEvent) or not entry:
        return 0
    return min(point.event_time_ns for point in entry)


def in_device_order(items: Sequence[T], entry: Callable[[T], Entry]) -> list[T]:
    """`items` with each device's entries sorted by event time (ties keep the order heard)
    in the places its entries took; everything else where it was."""
    places: dict[Source, list[int]] = {}
    for index, item in enumerate(items):
        source = source_of(entry(item))
        if source is not None:
            places.setdefault(source, []).append(index)
    out = list(items)
    for indexes in places.values():
        if len(indexes) > 1:
            ordered = sorted((items[i] for i in indexes), key=lambda it: time_of(entry(it)))
            for index, item in zip(indexes, ordered, strict=True):
                out[index] = item
    return out
