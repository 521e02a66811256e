"""The path every adapter feeds: points are encoded once and made durable in the spool.

`submit` returns a future that completes when the points are fsynced; adapters acknowledge
to devices only then. Listeners (the rules) see the points after they are durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from . import metrics
from .lineproto import encode_points
from .model import Point
from .spool import Spool

Listener = Callable[[Sequence[Point]], None]


class Pipeline:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._listeners: list[Listener] = []
        self._groups: dict[asyncio.Future[None], list[Sequence[Point]]] = {}

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(self, points: Sequence[Point]) -> asyncio.Future[None] | None:
        """Make `points` durable; None when none of them has a storable field.

        The returned future may be shared with other submissions committed together.
        """
        body = encode_points(points)
        if not body:
            return None
        fut = self.spool.append(body)
        group = self._groups.get(fut)
        if group is None:
            group = self._groups[fut] = []
            fut.add_done_callback(self._accepted)
        group.append(points)
        return fut

    def _accepted(self, fut: asyncio.Future[None]) -> None:
        group = self._groups.pop(fut, [])
        if fut.cancelled() or fut.exception() is not None:
            return
        counts: dict[str, int] = {}
        for points in group:
            for point in points:
                counts[point.measurement] = counts.get(point.measurement, 0) + 1
        for name, count in counts.items():
            metrics.points_accepted(name).inc(count)
        if self._listeners:  # after the acknowledgements, which wait on the same future
            asyncio.get_running_loop().call_soon(self._notify, group)

    def _notify(self, group: list[Sequence[Point]]) -> None:
        for listener in self._listeners:
            for points in group:
                listener(points)
