"""The QN memory: resends pass, other content under a remembered key is refused, and it keeps
at most its bound of keys, each for its window."""

from __future__ import annotations

from adapters.hj212.qn_memory import QnMemory

KEY = ("MN1", "20250101000000000", "2051", 0, "20250101000000")


def test_a_resend_passes_and_other_bytes_are_refused_within_the_window() -> None:
    memory = QnMemory(window_s=600)
    memory.remember(KEY, digest=1, now=0.0)
    assert not memory.reused(KEY, 1, 10.0)
    assert memory.reused(KEY, 2, 10.0)
    assert not memory.reused(KEY, 2, 600.0)  # the window has passed


def test_the_oldest_keys_go_first_past_the_bound() -> None:
    memory = QnMemory(window_s=600, max_entries=3)
    keys = [(f"MN{i}", "q", "2051", 0, "t") for i in range(5)]
    for i, key in enumerate(keys):
        memory.remember(key, digest=i, now=float(i))
    assert len(memory) == 3
    assert not memory.reused(keys[0], 99, 5.0)  # forgotten: no longer refused
    assert memory.reused(keys[4], 99, 5.0)


def test_keys_past_the_window_are_dropped_when_a_new_one_comes() -> None:
    memory = QnMemory(window_s=10)
    memory.remember(KEY, 1, 0.0)
    memory.remember(("MN2", "q", "2051", 0, "t"), 1, 11.0)
    assert len(memory) == 1
