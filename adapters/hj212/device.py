"""A minimal HJ 212 data-logger client (for the benchmark, tests and simulators)."""

from __future__ import annotations

import asyncio
import contextlib

from .frame import Frame, parse_frame
from .framer import Framer


class DeviceClient:
    """One TCP connection to a platform; sends raw frames and reads parsed replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = Framer()
        self._frames: list[Frame] = []

    @classmethod
    async def connect(cls, host: str, port: int, *, source: str | None = None) -> DeviceClient:
        """Connect, from the local address `source` when given (one of 127.0.0.0/8 on a
        loopback test: a plant behind its own address)."""
        local = (source, 0) if source is not None else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self, timeout_s: float = 5.0) -> Frame:
        """The next frame the platform sent; TimeoutError if none arrives in time."""
        async with asyncio.timeout(timeout_s):
            while not self._frames:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError("platform closed the connection")
                self._frames += [parse_frame(raw) for raw in self.framer.feed(chunk)]
        return self._frames.pop(0)

    async def expect_nothing(self, within_s: float) -> bool:
        """True if the platform sends nothing for `within_s` seconds."""
        try:
            await self.read_frame(within_s)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
