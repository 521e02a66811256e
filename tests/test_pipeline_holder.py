"""The pipeline's acknowledgement holder (a cluster's rules stream): over a real spool, the
future `submit` returns completes only once the points are durable and the holder's future
is done; what it holds goes to the holder before the listeners; a failed write still fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gateway.ingest.pipeline import Pipeline
from gateway.ingest.spool import Spool
from gateway.model import Point


def point(n: int) -> Point:
    return Point("emission", (("mn", "X"),), (("avg", float(n)),), n)


async def test_acks_wait_for_the_holder_which_hears_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.open()
    pipeline = Pipeline(spool)
    heard: list[tuple[str, int]] = []
    stored: list[asyncio.Future[None]] = []

    def holder(points: Sequence[Point]) -> asyncio.Future[None]:
        heard.append(("holder", points[0].event_time_ns))
        stored.append(asyncio.get_running_loop().create_future())
        return stored[-1]

    pipeline.hold_acks_for(holder)
    pipeline.add_listener(lambda points: heard.append(("listener", points[0].event_time_ns)))
    try:
        ack = pipeline.submit([point(1)])
        assert ack is not None
        await asyncio.wait_for(_until(lambda: bool(stored)), 10)
        await asyncio.sleep(0.05)
        assert not ack.done()  # durable, but the holder has not stored it yet
        stored[0].set_result(None)
        await asyncio.wait_for(ack, 10)
        assert heard == [("holder", 1), ("listener", 1)]

        pipeline.judge([point(2)])  # durable already: the holder hears it, nobody waits
        await asyncio.sleep(0)
        assert heard[2:] == [("holder", 2), ("listener", 2)]
    finally:
        await spool.close()


async def test_a_holder_that_drops_does_not_hold(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.open()
    pipeline = Pipeline(spool)
    pipeline.hold_acks_for(lambda points: None)  # dropped (its queue full): acked at once
    try:
        ack = pipeline.submit([point(1)])
        assert ack is not None
        await asyncio.wait_for(ack, 10)
    finally:
        await spool.close()


class FailingLog:
    """A durable log whose write fails (the seam the spool and the cluster's log fill)."""

    def __init__(self) -> None:
        self.writes: list[asyncio.Future[None]] = []

    def append(self, payload: bytes) -> asyncio.Future[None]:
        self.writes.append(asyncio.get_running_loop().create_future())
        return self.writes[-1]


async def test_a_failed_write_fails_the_held_ack_and_the_holder_hears_nothing() -> None:
    log = FailingLog()
    pipeline = Pipeline(log)
    heard: list[Sequence[Point]] = []
    pipeline.hold_acks_for(lambda points: heard.append(points))
    ack = pipeline.submit([point(1)])
    assert ack is not None and ack is not log.writes[0]
    log.writes[0].set_exception(OSError("disk gone"))
    with pytest.raises(OSError, match="disk gone"):
        await asyncio.wait_for(ack, 10)
    assert heard == []


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)
