"""A partition's entries in each device's order (reorder.py): property-based, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.cluster.reorder import Entry, in_device_order, source_of, time_of
from gateway.model import DeviceEvent, Point

METERS = ("M1", "M2", "M3")


def reading(meter: str, minute: int) -> list[Point]:
    tags = (("enterprise", "E1"), ("meter", meter))
    return [Point("power", tags, (("kwh", float(minute)),), minute * 60_000_000_000)]


def event(n: int) -> DeviceEvent:
    return DeviceEvent("contact", f"mn:{n}", datetime(2026, 4, 1, tzinfo=UTC))


entries = st.lists(
    st.one_of(
        st.builds(reading, st.sampled_from(METERS), st.integers(0, 50)),
        st.builds(event, st.integers(0, 5)),
    ),
    max_size=40,
)


@given(entries)
def test_each_device_in_event_time_order_in_its_own_places(items: list[Entry]) -> None:
    out = in_device_order(items, lambda e: e)
    assert sorted(map(id, out)) == sorted(map(id, items))  # the same entries
    for index, (before, after) in enumerate(zip(items, out, strict=True)):
        assert source_of(before) == source_of(after), index  # each device keeps its places
        if source_of(before) is None:
            assert after is before  # device events stay where they were
    for meter in METERS:
        times = [time_of(e) for e in out if source_of(e) == ("power", "", "E1", meter)]
        assert times == sorted(times)


def test_ties_keep_the_order_heard_and_other_devices_stay() -> None:
    first, second = reading("M1", 5), reading("M1", 5)
    late = reading("M1", 1)
    other = reading("M2", 9)
    out = in_device_order([first, other, second, late], lambda e: e)
    assert out == [late, other, first, second]
    assert out[2] is first and out[3] is second


def test_sources_of_loggers_gates_and_points_of_no_device() -> None:
    frame = [Point("emission", (("mn", "MN1"), ("pollutant", "a01012")), (("avg", 1.0),), 0)]
    gate = [Point("vehicle_passage", (("enterprise", "E1"), ("gate", "G1")), (), 0)]
    loose = [Point("audit", (("who", "x"),), (), 0)]
    assert source_of(frame) == ("emission", "MN1", "", "")
    assert source_of(gate) == ("vehicle_passage", "", "E1", "G1")
    assert source_of(loose) is None and source_of([]) is None
    assert source_of(event(1)) is None and time_of(event(1)) == 0
