"""A partition's entries in the order the ingestion nodes took them (reorder.py):
property-based, no I/O."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from gateway.cluster.reorder import release

Item = tuple[float, int, str]  # heard (worker's clock), stamp (node's), name


def heard(item: Item) -> float:
    return item[0]


def stamp(item: Item) -> int:
    return item[1]


# what a worker holds: heard in order, stamps in any order (two nodes publishing apart)
holdings = st.lists(st.tuples(st.floats(0, 10), st.integers(0, 50)), max_size=30).map(
    lambda rows: [
        (when, taken, f"e{n}") for n, (when, taken) in enumerate(sorted(rows, key=lambda r: r[0]))
    ]
)


@given(holdings, st.floats(0, 10))
def test_released_in_stamp_order_and_nothing_taken_after_stays_before(
    items: list[Item], cut: float
) -> None:
    batch, kept = release(deque(items), cut, heard, stamp)
    assert sorted(batch + list(kept)) == sorted(items)  # each once
    assert all(i in batch for i in items if i[0] <= cut)  # everything heard by the cut
    assert [stamp(i) for i in batch] == sorted(stamp(i) for i in batch)
    if batch:  # what stays was taken after everything released, and stays as heard
        assert all(stamp(i) >= stamp(batch[-1]) for i in kept)
        assert list(kept) == [i for i in items if i in kept]
    else:
        assert list(kept) == items


def test_a_later_one_of_the_other_node_goes_first_and_ties_keep_their_order() -> None:
    held = deque([(0.0, 20, "node A 10:05"), (0.1, 20, "node A 10:10"), (0.3, 10, "B 10:00")])
    batch, kept = release(held, 0.2, heard, stamp)
    assert [name for *_, name in batch] == ["B 10:00", "node A 10:05", "node A 10:10"]
    assert not kept
    batch, kept = release(deque([(0.0, 5, "a"), (0.5, 6, "b")]), 0.2, heard, stamp)
    assert (batch, list(kept)) == ([(0.0, 5, "a")], [(0.5, 6, "b")])  # held on: taken after
