"""Data loggers that survive a node's death: each on its own connection, frames in order with
up to `window` unacknowledged; a broken connection is opened again and every frame not yet
acknowledged is sent again (as is one unacknowledged for `resend_s`), so that in the end every
frame sent is acknowledged and the points of frames 0..sent-1 are what the gateway owes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FrameOf = Callable[[int], bytes]


def qn_of(frame: bytes) -> bytes:
    """The QN of a frame or a reply (its 17 digits), b"" without one."""
    at = frame.find(b"QN=")
    return frame[at + 3 : at + 20] if at >= 0 else b""


@dataclass
class _Unacked:
    index: int
    frame: bytes
    first: float  # perf_counter of the first send
    last: float  # of the latest


class _Link(asyncio.Protocol):
    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        self.logger.answered(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        self.logger.lost(self)


class Logger:
    """One device. `allow(n)` lets it send frames 0..n-1 (as its window permits); `finish()`
    stops new frames, and `done` is set once every frame sent is acknowledged."""

    def __init__(
        self,
        port: int,
        frame_of: FrameOf,
        window: int = 64,
        resend_s: float = 10.0,
        name: str = "",
        source: str | None = None,
    ) -> None:
        self.port = port
        self.name = name  # its MN
        self.source = source  # the local address it connects from
        self.frame_of = frame_of
        self.window = window
        self.resend_s = resend_s
        self.allowed = 0
        self.next = 0  # the index of the next new frame
        self.unacked: dict[bytes, _Unacked] = {}
        self.acks: list[tuple[float, float]] = []  # (first send, ack), perf_counter
        self.sent_at: dict[int, float] = {}  # first send of each frame, when `keep_sent`
        self.keep_sent = False
        self.reconnects = 0
        self.resent = 0
        self.finishing = False
        self.done = asyncio.Event()
        self._link: _Link | None = None
        self._connecting = False
        self._closed = False
        self._task: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await self._connect()

    def allow(self, count: int) -> None:
        if count > self.allowed and not self.finishing:
            self.allowed = count
            self._pump()

    def finish(self) -> None:
        self.finishing = True
        self.allowed = self.next
        if not self.unacked:
            self.done.set()

    def resume(self) -> None:
        """New frames again after `finish()`."""
        self.finishing = False
        self.done.clear()

    def answered(self, lines: Sequence[bytes]) -> None:
        now = time.perf_counter()
        for line in lines:
            if b"CN=9014" not in line:
                continue
            entry = self.unacked.pop(qn_of(line), None)
            if entry is not None:
                self.acks.append((entry.first, now))
        if self.finishing and not self.unacked:
            self.done.set()
        self._pump()

    def lost(self, link: _Link) -> None:
        if link is self._link:
            self._link = None
            if not (self.finishing and not self.unacked):
                self.reconnects += 1
                asyncio.get_running_loop().call_later(0.1, self._reconnect)

    def check(self) -> None:
        """Send again what waited `resend_s` for its ack; reconnect if the link is gone."""
        now = time.perf_counter()
        link = self._link
        if link is None or link.transport is None:
            if not self.done.is_set():
                self._reconnect()
            return
        for entry in self.unacked.values():
            if now - entry.last > self.resend_s:
                link.transport.write(entry.frame)
                entry.last = now
                self.resent += 1

    def _reconnect(self) -> None:
        if not self._connecting and self._link is None and not self._closed:
            self._task = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        if self._connecting or self._link is not None:
            return
        self._connecting = True
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    _, link = await loop.create_connection(
                        lambda: _Link(self),
                        "127.0.0.1",
                        self.port,
                        local_addr=None if self.source is None else (self.source, 0),
                    )
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        finally:
            self._connecting = False
        self._link = link
        assert link.transport is not None
        now = time.perf_counter()
        for entry in sorted(self.unacked.values(), key=lambda e: e.index):
            link.transport.write(entry.frame)
            entry.last = now
            self.resent += 1
        self._pump()

    def _pump(self) -> None:
        link = self._link
        if link is None or link.transport is None:
            return
        end = min(self.allowed, self.next + self.window - len(self.unacked))
        if end <= self.next:
            return
        now = time.perf_counter()
        frames = []
        for index in range(self.next, end):
            frame = self.frame_of(index)
            self.unacked[qn_of(frame)] = _Unacked(index, frame, now, now)
            if self.keep_sent:
                self.sent_at[index] = now
            frames.append(frame)
        self.next = end
        link.transport.write(b"".join(frames))

    def reconnect(self) -> None:
        """Close the connection: it is opened again at once, what was unacknowledged sent
        again."""
        link = self._link
        if link is not None and link.transport is not None:
            link.transport.close()

    def close(self) -> None:
        self._closed = True
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()


async def watch(loggers: Sequence[Logger], stop: asyncio.Event) -> None:
    """Every second, each logger's resends and reconnects, until `stop`."""
    while not stop.is_set():
        for logger in loggers:
            logger.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def pace(loggers: Sequence[Logger], rate: float, seconds: float) -> None:
    """`rate` new frames/s in all, spread evenly over `loggers`, for `seconds` (rate 0: as
    fast as their windows allow)."""
    if rate <= 0:
        for logger in loggers:
            logger.allow(1 << 62)
        await asyncio.sleep(seconds)
        for logger in loggers:
            logger.allowed = logger.next
        return
    start = time.perf_counter()
    base = [logger.allowed for logger in loggers]
    per = rate / len(loggers)
    while (elapsed := time.perf_counter() - start) < seconds:
        for logger, first in zip(loggers, base, strict=True):
            logger.allow(first + int(per * elapsed) + 1)
        await asyncio.sleep(0.005)


async def drain(loggers: Sequence[Logger], limit_s: float) -> int:
    """Finish every logger and wait until each has its acks (at most `limit_s`); the frames
    still unacknowledged then."""
    for logger in loggers:
        logger.finish()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(lg.done.wait() for lg in loggers)), limit_s)
    return sum(len(logger.unacked) for logger in loggers)


def acked_between(loggers: Sequence[Logger], start: float, end: float) -> int:
    """Acks that arrived in [start, end)."""
    return sum(start <= acked < end for lg in loggers for _, acked in lg.acks)


def latencies(loggers: Sequence[Logger], start: float, end: float) -> list[float]:
    """Ack latencies (from the first send) of the frames first sent in [start, end)."""
    return [acked - first for lg in loggers for first, acked in lg.acks if start <= first < end]


def per_second(loggers: Sequence[Logger], start: float, end: float) -> list[int]:
    """Acks in each whole second from `start` to `end`."""
    counts = [0] * max(0, int(end - start))
    for lg in loggers:
        for _, acked in lg.acks:
            slot = int(acked - start)
            if 0 <= slot < len(counts) and acked >= start:
                counts[slot] += 1
    return counts
