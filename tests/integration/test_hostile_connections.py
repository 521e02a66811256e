"""Hostile and broken connections over real sockets: none of them costs the other devices.

A device that never reads its replies, a slow-loris, junk trickled to stay alive, a flood of
connections that never send an accepted frame, a full server; and what must keep working:
devices quiet between frames, DTUs that send a registration string first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway import metrics
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config
from tests.frames import qn_for, upload

GOOD = [f"GOOD{k:010d}" for k in range(1, 6)]
HOSTILE = "HOSTILE0000001"
QUIET = "QUIET000000001"
DTU = "DTU00000000001"
REGISTRY = '[[enterprises]]\nid = "E9"\nname = "Hostile connections"\n' + "".join(
    f'\n  [[enterprises.outlets]]\n  id = "{mn}"\n  mn = "{mn}"\n  password = "123456"\n'
    for mn in [*GOOD, HOSTILE, QUIET, DTU]
)
REASONS = (
    "idle",
    "no_frame",
    "slow_frame",
    "write_blocked",
    "max_connections",
    "max_connections_per_address",
    "max_unproven_per_address",
)

MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> AsyncIterator[MakeGateway]:
    """Start gateways on the test registry with `[hj212]` keys overridden; stop them after."""
    started: list[Gateway] = []

    async def make(**hj212: Any) -> Gateway:
        directory = tmp_path / f"gw{len(started)}"
        path = write_config(directory, influx.url, database, REGISTRY, hj212=hj212)
        gw = Gateway(load_config(path))
        await gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.shutdown()


def closed(reason: str) -> float:
    return float(metrics.CONNECTIONS_CLOSED.labels(reason=reason)._value.get())


def request(mn: str, i: int, *, cn: str = "9015", reply: bool = True) -> bytes:
    """A heartbeat (9015) or time request (1013) of HJ 212-2017; Flag's A bit asks for a reply."""
    fields: list[tuple[str, str | int]] = [
        ("QN", qn_for(i)),
        ("ST", "32"),
        ("CN", cn),
        ("PW", "123456"),
        ("MN", mn),
        ("Flag", 5 if reply else 4),
    ]
    return build_frame(build_segment(fields))


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def server_closes(reader: asyncio.StreamReader, within_s: float) -> bool:
    """True once the gateway has closed the connection (EOF or reset) within `within_s`."""
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return True


async def good_device(port: int, mn: str, count: int, pace_s: float = 0.0) -> list[str]:
    """Upload `count` hourly records one by one, each after the ack of the one before; return
    the QNs acknowledged with a 9014."""
    dev = await DeviceClient.connect("127.0.0.1", port)
    acked: list[str] = []
    try:
        for i in range(count):
            qn = qn_for(i)
            moment = datetime(2026, 4, 1) + timedelta(hours=i)
            await dev.send(upload(mn=mn, qn=qn, data_time=moment))
            ack = await dev.read_frame()
            if (ack.cn, ack.qn, ack.mn) == ("9014", qn, mn):
                acked.append(qn)
            if pace_s:
                await asyncio.sleep(pace_s)
    finally:
        await dev.close()
    return acked


async def stored_per_outlet(
    url: str, db: str, expected: dict[str, int], timeout_s: float = 15.0
) -> dict[str, int]:
    """Hourly w01018 records in InfluxDB per outlet, once they are `expected` (or timed out)."""
    query = "SELECT count(avg) FROM emission WHERE pollutant = 'w01018' GROUP BY outlet"
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await asyncio.to_thread(influx_rows, url, db, query)
        got = {str(r["outlet"]): int(r["count"]) for r in rows}
        if got == expected or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_device_that_never_reads_is_bounded_then_closed_while_others_get_every_ack(
    make_gateway: MakeGateway, influx: localstack.ManagedProcess, database: str
) -> None:
    high, cap = 16384, 65536
    gw = await make_gateway(
        write_buffer_high_bytes=high, write_buffer_max_bytes=cap, write_blocked_timeout_s=2.0
    )
    port = gw.hj212.port
    before = closed("write_blocked")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill the pipe sooner
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _reader, writer = await asyncio.open_connection(sock=sock)
    # time requests, each answered with a 9013 and a 1012, that the device never reads
    burst = b"".join(request(HOSTILE, i, cn="1013") for i in range(200))

    async def flood() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(burst)
                await writer.drain()

    flooding = asyncio.create_task(flood())
    await wait_for(
        lambda: HOSTILE in gw.hj212.by_mn and gw.hj212.by_mn[HOSTILE].write_paused,
        20.0,
        "the gateway to stop reading the device that does not read",
    )
    conn = gw.hj212.by_mn[HOSTILE]
    largest, most_inflight = 0, 0

    async def watch() -> None:
        nonlocal largest, most_inflight
        while conn.transport is not None:
            largest = max(largest, conn.transport.get_write_buffer_size())
            most_inflight = max(most_inflight, conn.inflight)
            await asyncio.sleep(0.005)

    watching = asyncio.create_task(watch())
    results = await asyncio.gather(*(good_device(port, mn, 30) for mn in GOOD))
    assert [len(acked) for acked in results] == [30] * 5
    await asyncio.wait_for(watching, 2.0 + gw.hj212.sweep_interval() + 3.0)
    assert closed("write_blocked") == before + 1
    assert high < largest <= high + 1024  # the high-water mark and a frame's replies
    assert most_inflight <= gw.hj212.config.max_inflight_per_connection
    assert HOSTILE not in gw.hj212.by_mn and conn not in gw.hj212.connections
    await asyncio.wait_for(flooding, 5.0)
    writer.close()
    stored = await stored_per_outlet(influx.url, database, dict.fromkeys(GOOD, 30))
    assert stored == dict.fromkeys(GOOD, 30)


async def test_slow_loris_is_closed_at_the_frame_deadline_while_others_get_acks(
    make_gateway: MakeGateway,
) -> None:
    frame_timeout = 1.0
    gw = await make_gateway(frame_timeout_s=frame_timeout)
    port, interval = gw.hj212.port, gw.hj212.sweep_interval()
    before = closed("slow_frame")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(HOSTILE, 0, reply=False))  # an accepted frame: it is a device
    await wait_for(lambda: HOSTILE in gw.hj212.by_mn, 5.0, "the heartbeat")
    frame = upload(mn=HOSTILE, qn=qn_for(1))

    async def trickle() -> None:
        for byte in frame:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)

    started = time.monotonic()
    trickling = asyncio.create_task(trickle())
    others = asyncio.gather(*(good_device(port, mn, 8, pace_s=0.2) for mn in GOOD))
    assert await server_closes(reader, frame_timeout + interval + 2.0)
    elapsed = time.monotonic() - started
    trickling.cancel()
    assert frame_timeout <= elapsed <= frame_timeout + interval + 1.0
    assert closed("slow_frame") == before + 1
    assert [len(acked) for acked in await others] == [8] * 5
    writer.close()


async def test_trickled_junk_does_not_keep_a_connection_alive(make_gateway: MakeGateway) -> None:
    idle_timeout = 1.0
    gw = await make_gateway(idle_timeout_s=idle_timeout)
    before = closed("idle")
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.hj212.port)
    writer.write(request(HOSTILE, 0, reply=False))
    await wait_for(lambda: HOSTILE in gw.hj212.by_mn, 5.0, "the heartbeat")
    started = time.monotonic()

    async def trickle() -> None:
        while True:
            writer.write(b"x")  # junk between frames: skipped, no frame begins
            await asyncio.sleep(0.2)

    trickling = asyncio.create_task(trickle())
    assert await server_closes(reader, idle_timeout + gw.hj212.sweep_interval() + 2.0)
    trickling.cancel()
    assert time.monotonic() - started >= idle_timeout
    assert closed("idle") == before + 1
    writer.close()


async def test_unproven_flood_does_not_lock_out_a_device_of_the_same_address(
    make_gateway: MakeGateway,
) -> None:
    first_frame = 1.5
    gw = await make_gateway(max_unproven_per_address=20, first_frame_timeout_s=first_frame)
    port, interval = gw.hj212.port, gw.hj212.sweep_interval()
    evicted, no_frame = closed("max_unproven_per_address"), closed("no_frame")
    flood = [await asyncio.open_connection("127.0.0.1", port) for _ in range(80)]
    await wait_for(
        lambda: closed("max_unproven_per_address") == evicted + 60,
        5.0,
        "the oldest 60 of the flood to make room for the newer",
    )
    assert gw.hj212.per_address == {"127.0.0.1": 20}
    dev = await DeviceClient.connect("127.0.0.1", port)  # takes the oldest one's place
    await dev.send(upload(mn=GOOD[0], qn=qn_for(1)))
    assert (await dev.read_frame()).qn == qn_for(1)
    assert closed("max_unproven_per_address") == evicted + 61
    assert len(gw.hj212.unproven) == 19  # the rest wait for their first-frame deadline
    gone = await asyncio.gather(
        *(server_closes(reader, first_frame + interval + 2.0) for reader, _ in flood)
    )
    assert all(gone)
    assert closed("no_frame") == no_frame + 19
    await dev.send(upload(mn=GOOD[0], qn=qn_for(2)))
    assert (await dev.read_frame()).qn == qn_for(2)
    assert gw.hj212.per_address == {"127.0.0.1": 1}
    await dev.close()
    for _, writer in flood:
        writer.close()


async def test_full_server_closes_the_oldest_unproven_connection_before_refusing(
    make_gateway: MakeGateway,
) -> None:
    gw = await make_gateway(max_connections=3)
    port = gw.hj212.port
    devices = []
    for k in range(2):
        dev = await DeviceClient.connect("127.0.0.1", port)
        await dev.send(upload(mn=GOOD[k], qn=qn_for(k)))
        assert (await dev.read_frame()).qn == qn_for(k)
        devices.append(dev)
    silent, silent_writer = await asyncio.open_connection("127.0.0.1", port)
    await wait_for(lambda: len(gw.hj212.connections) == 3, 5.0, "the silent connection")
    before = closed("max_connections")
    third = await DeviceClient.connect("127.0.0.1", port)
    await third.send(upload(mn=GOOD[2], qn=qn_for(2)))
    assert (await third.read_frame()).qn == qn_for(2)
    assert await server_closes(silent, 2.0)
    devices.append(third)
    refused, refused_writer = await asyncio.open_connection("127.0.0.1", port)
    assert await server_closes(refused, 2.0)  # all three are devices: the new one is refused
    assert closed("max_connections") == before + 2
    for k, dev in enumerate(devices):
        await dev.send(upload(mn=GOOD[k], qn=qn_for(10 + k)))
        assert (await dev.read_frame()).qn == qn_for(10 + k)
        await dev.close()
    silent_writer.close()
    refused_writer.close()


async def test_quiet_device_and_registering_dtu_stay_connected(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(idle_timeout_s=1.5, frame_timeout_s=1.0, first_frame_timeout_s=1.5)
    before = {reason: closed(reason) for reason in REASONS}
    port = gw.hj212.port

    async def quiet() -> int:
        dev = await DeviceClient.connect("127.0.0.1", port)
        answered = 0
        for i in range(8):  # 4 s, longer than every deadline, with a heartbeat each 0.5 s
            await dev.send(request(QUIET, i))
            reply = await dev.read_frame()
            answered += (reply.cn, reply.qn) == ("9013", qn_for(i))
            await asyncio.sleep(0.5)
        await dev.close()
        return answered

    async def dtu() -> list[str]:
        dev = await DeviceClient.connect("127.0.0.1", port)
        await dev.send(b"DTU-REG-0001\r\n\x01\x02")  # the DTU registers; the logger is slower
        await asyncio.sleep(0.6)  # within first_frame_timeout_s
        acked = []
        for i in range(4):
            frame = upload(mn=DTU, qn=qn_for(i), data_time=datetime(2026, 4, 2, i))
            await dev.send(frame[:50])
            await asyncio.sleep(0.4)  # a frame in two packets, within frame_timeout_s
            await dev.send(frame[50:] + b"\x00HEARTBEAT")  # junk after the frame
            acked.append((await dev.read_frame()).qn)
            await asyncio.sleep(0.5)  # quiet, within idle_timeout_s
        await dev.close()
        return acked

    answered, acked = await asyncio.gather(quiet(), dtu())
    assert answered == 8
    assert acked == [qn_for(i) for i in range(4)]
    assert {reason: closed(reason) for reason in REASONS} == before


async def test_connection_waiting_for_the_spool_is_held_to_no_deadline(
    make_gateway: MakeGateway,
) -> None:
    idle_timeout = 0.5
    gw = await make_gateway(idle_timeout_s=idle_timeout)
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    await dev.send(upload(mn=GOOD[0], qn=qn_for(1)))
    assert (await dev.read_frame()).qn == qn_for(1)
    conn = gw.hj212.by_mn[GOOD[0]]
    conn.inflight_paused = True  # as when its acknowledgements wait for the spool
    await asyncio.sleep(3 * idle_timeout)  # the gateway is the one waiting: no idle close
    assert conn.attached
    conn.inflight_paused = False
    assert await server_closes(dev.reader, idle_timeout + gw.hj212.sweep_interval() + 1.0)
