"""Bounds of the HJ 212 server: idle timeout, connections per address, stale partial frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from adapters.hj212.device import DeviceClient
from gateway import metrics
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.frames import qn_for, upload


async def closed_by_server(client: DeviceClient, within_s: float) -> bool:
    try:
        async with asyncio.timeout(within_s):
            return await client.reader.read(100) == b""
    except TimeoutError:
        return False


async def test_idle_connection_is_closed(gateway_config: Callable[..., LoadedConfig]) -> None:
    gw = Gateway(gateway_config(hj212={"idle_timeout_s": 0.5}))
    await gw.start()
    try:
        idle = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        assert await closed_by_server(idle, 3.0)
        assert len(gw.hj212.connections) == 0
    finally:
        await gw.shutdown()


async def test_connections_per_address_are_limited(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    gw = Gateway(gateway_config(hj212={"max_connections_per_address": 2}))
    await gw.start()
    try:
        first = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        second = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        third = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        assert await closed_by_server(third, 2.0)
        await first.send(upload(qn=qn_for(1)))
        assert (await first.read_frame()).qn == qn_for(1)
        await second.close()
        await asyncio.sleep(0.2)
        fourth = await DeviceClient.connect("127.0.0.1", gw.hj212.port)  # a slot is free again
        await fourth.send(upload(qn=qn_for(2)))
        assert (await fourth.read_frame()).qn == qn_for(2)
        assert gw.hj212.per_address == {"127.0.0.1": 2}
    finally:
        await gw.shutdown()


async def test_stale_partial_frame_is_dropped_and_counted(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    expired = metrics.FRAMES_REJECTED.labels(adapter="hj212", reason="partial_expired")
    before = expired._value.get()
    gw = Gateway(gateway_config(hj212={"partial_frame_timeout_s": 0.4}))
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        frame = upload(qn=qn_for(3))
        await dev.send(frame[:40])  # the rest never comes
        await asyncio.sleep(1.0)
        assert expired._value.get() == before + 1
        conn = next(iter(gw.hj212.connections))
        assert conn.framer.pending == 0
        await dev.send(frame)
        assert (await dev.read_frame()).qn == qn_for(3)
    finally:
        await gw.shutdown()
