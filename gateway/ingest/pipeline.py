"""The path every adapter feeds: points are encoded once and made durable in the spool.

`submit` returns a future that completes when the points are fsynced; adapters acknowledge
to devices only then. Listeners (the rules) see the points after they are durable: the stored
points, or what the adapter says is to be judged of them (the whole record of a split upload
once its last part is durable; nothing for the parts before). One listener may hold the
acknowledgements (`hold_acks_for`: a cluster's rules stream): the future then completes once
the future it returns for the points does too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway import metrics
from gateway.influx.lineproto import encode_points
from gateway.model import Point

Listener = Callable[[Sequence[Point]], None]
Holder = Callable[[Sequence[Point]], "asyncio.Future[None] | None"]
Group = list[tuple[Sequence[Point], Sequence[Point]]]


class DurableLog(Protocol):
    """Where points are made durable: the spool, or the cluster's replicated log."""

    def append(self, payload: bytes) -> asyncio.Future[None]: ...


class Pipeline:
    def __init__(self, spool: DurableLog) -> None:
        self.spool = spool
        self._listeners: list[Listener] = []
        self._holder: Holder | None = None
        # future -> (points stored, points to judge) of each submission committed with it
        self._groups: dict[asyncio.Future[None], Group] = {}
        self._acks: dict[asyncio.Future[None], asyncio.Future[None]] = {}  # durable -> acked

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def hold_acks_for(self, holder: Holder) -> None:
        """`holder` gets what is to be judged once durable, before the listeners; what
        `submit` returned completes once the future `holder` returns does too (None: at
        once)."""
        self._holder = holder

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
            if self._holder is not None:
                self._acks[fut] = asyncio.get_running_loop().create_future()
        group.append((points, points if judged is None else judged))
        return self._acks.get(fut, fut)

    def judge(self, points: Sequence[Point]) -> None:
        """Hand listeners points whose data is already durable (a record completed late)."""
        if self._holder is not None and points:
            self._holder(points)  # nobody waits: durable already
        if self._listeners and points:
            group: Group = [((), points)]
            asyncio.get_running_loop().call_soon(self._notify, group)

    def _accepted(self, fut: asyncio.Future[None]) -> None:
        group = self._groups.pop(fut, [])
        acked = self._acks.pop(fut, None)
        if fut.cancelled() or fut.exception() is not None:
            if acked is not None:
                exc = None if fut.cancelled() else fut.exception()
                if exc is None:
                    acked.cancel()
                else:
                    acked.set_exception(exc)
            return
        if acked is not None:
            self._hold(acked, group)
        counts: dict[str, int] = {}
        for points, _ in group:
            for point in points:
                counts[point.measurement] = counts.get(point.measurement, 0) + 1
        for name, count in counts.items():
            metrics.points_accepted(name).inc(count)
        if self._listeners:  # after the acknowledgements, which wait on the same future
            asyncio.get_running_loop().call_soon(self._notify, group)

    def _hold(self, acked: asyncio.Future[None], group: Group) -> None:
        assert self._holder is not None
        held = [f for _, judged in group if judged and (f := self._holder(judged)) is not None]
        if not held:
            acked.set_result(None)
            return

        def done(_: object) -> None:
            if not acked.done():
                acked.set_result(None)

        asyncio.gather(*held, return_exceptions=True).add_done_callback(done)

    def _notify(self, group: Group) -> None:
        for listener in self._listeners:
            for _, judged in group:
                if judged:
                    listener(judged)
