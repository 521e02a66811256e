"""A partition's entries in the order the ingestion nodes took them. Pure, no I/O.

Two ingestion nodes publish to the rules stream independently: the shared MQTT subscription
hands a meter's readings to them in turn, and each publishes its batch once its points are
durable, so a partition may hold a meter's 10:05 reading before its 10:00 one. Each entry
carries its node's stamp (wall clock when the node took it). A rule worker holds what it
hears for `reorder_s` and judges what `release` gives, in stamp order: the order in which one
process would have taken them, nodes' clocks kept in step (NTP) apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def release(
    held: deque[T], cut: float, heard: Callable[[T], float], stamp: Callable[[T], int]
) -> tuple[list[T], deque[T]]:
    """What to judge now, in stamp order, and what stays held (in the order heard).

    `held` is in the order heard (`heard`: when, on the worker's clock). Judged now: what was
    heard by `cut`, and what was heard since but stamped before the latest of those (it was
    taken before it, so it goes before it)."""
    due: list[T] = []
    while held and heard(held[0]) <= cut:
        due.append(held.popleft())
    if not due:
        return due, held
    latest = max(stamp(item) for item in due)
    kept: deque[T] = deque()
    for item in held:
        (due if stamp(item) < latest else kept).append(item)
    due.sort(key=stamp)  # stable: one node's entries of one stamp stay as published
    return due, kept
