"""The path every adapter feeds: points are encoded once and made durable in the spool.

`submit` returns a future that completes when the points are fsynced; adapters acknowledge
to devices only then. Listeners (the rules) see the points after they are durable: the stored
points, or what the adapter says is to be judged of them (the whole record of a split upload
once its last part is durable; nothing for the parts before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway import metrics
from gateway.influx.lineproto import encode_points
from gateway.model import Point

Listener = Callable[[Sequence[Point]], None]


class DurableLog(Protocol):
    """Where points are made durable: the spool, or the cluster's replicated log."""

    def append(self, payload: bytes) -> asyncio.Future[None]: ...


class Pipeline:
    def __init__(self, spool: DurableLog) -> None:
        self.spool = spool
        self._listeners: list[Listener] = []
        # future -> (points stored, points to judge) of each submission committed with it
        self._groups: dict[asyncio.Future[None], list[tuple[Sequence[Point], Sequence[Point]]]] = {}

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(
        self, points: Sequence[Point], judged: Sequence[Point] | None = None
    ) -> asyncio.Future[None] | None:
        """Make `points` durable; None when none of them has a storable field.

        Listeners get `judged` (default: `points`) once they are durable. The returned future
        may be shared with other submissions committed together.
        """
        body = encode_points(points)
        if not body:
            if judged:
                self.judge(judged)
            return None
        fut = self.spool.append(body)
        group = self._groups.get(fut)
        if group is None:
            group = self._groups[fut] = []
            fut.add_done_callback(self._accepted)
        group.append((points, points if judged is None else judged))
        return fut

    def judge(self, points: Sequence[Point]) -> None:
        """Hand listeners points whose data is already durable (a record completed late)."""
        if self._listeners and points:
            group: list[tuple[Sequence[Point], Sequence[Point]]] = [((), points)]
            asyncio.get_running_loop().call_soon(self._notify, group)

    def _accepted(self, fut: asyncio.Future[None]) -> None:
        group = self._groups.pop(fut, [])
        if fut.cancelled() or fut.exception() is not None:
            return
        counts: dict[str, int] = {}
        for points, _ in group:
            for point in points:
                counts[point.measurement] = counts.get(point.measurement, 0) + 1
        for name, count in counts.items():
            metrics.points_accepted(name).inc(count)
        if self._listeners:  # after the acknowledgements, which wait on the same future
            asyncio.get_running_loop().call_soon(self._notify, group)

    def _notify(self, group: list[tuple[Sequence[Point], Sequence[Point]]]) -> None:
        for listener in self._listeners:
            for _, judged in group:
                if judged:
                    listener(judged)
