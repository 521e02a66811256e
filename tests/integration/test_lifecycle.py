"""Start and stop are bounded whatever InfluxDB and the devices do: a hanging InfluxDB (a
server that accepts and never answers) neither delays the HJ 212 listener nor stretches
SIGTERM past `shutdown_timeout_s`; data acked meanwhile is in the spool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.hj212.device import DeviceClient
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.conftest import write_config
from tests.frames import qn_for, upload


@pytest.fixture
async def black_hole() -> AsyncIterator[str]:
    """An HTTP address that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_hanging_influxdb_delays_neither_start_nor_stop(
    tmp_path: Path, black_hole: str
) -> None:
    path = write_config(
        tmp_path / "gw",
        black_hole,
        "db",
        gateway={
            "data_dir": "data",
            "registry": "registry.toml",
            "log_format": "console",
            "shutdown_timeout_s": 2,
        },
        influx={"url": black_hole, "database": "db", "timeout_s": 30, "create_database": True},
    )
    gw = Gateway(load_config(path))
    began = time.monotonic()
    await gw.start()
    started_in = time.monotonic() - began
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        await dev.send(upload(qn=qn_for(1)))
        assert (await dev.read_frame()).cn == "9014"  # durable in the spool
        await dev.close()
    finally:
        began = time.monotonic()
        await gw.shutdown()
        stopped_in = time.monotonic() - began
    # bounds of the design, far from the 30 s an InfluxDB request may wait
    assert started_in < 10, started_in
    assert stopped_in < 2 + 1, stopped_in
    assert gw.spool.depth_bytes > 0  # the acked frame waits in the spool for InfluxDB
