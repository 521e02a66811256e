"""The gateway answers its upstream as a logger would: heartbeats when idle, 1011 with its
clock, 1012 taken, requests for MNs it does not forward or with a wrong password refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from adapters.hj212.builder import build_frame, build_segment, data_ack
from adapters.hj212.cp import parse_cp, parse_hj212_time
from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import Frame, parse_frame
from adapters.hj212.framer import Framer
from devkit import localstack
from gateway.archive.record import BEIJING
from tests.frames import MN_WATER
from tests.frames import qn_for as minute_qn

from .kit import UP_PASSWORD, city_config, minute_upload, start_gateway, wait_until


def request(cn: str, qn: str, mn: str = MN_WATER, pw: str = UP_PASSWORD) -> bytes:
    fields: list[tuple[str, str | int]] = [("QN", qn), ("ST", "32"), ("CN", cn)]
    fields += [("PW", pw), ("MN", mn), ("Flag", 5)]
    cp = "SystemTime=20260401000000" if cn == "1012" else ""
    return build_frame(build_segment(fields, cp))


class Platform:
    """A platform that acknowledges uploads and keeps every frame it gets."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        framer = Framer()
        while chunk := await reader.read(65536):
            for raw in framer.feed(chunk):
                frame = parse_frame(raw)
                self.frames.append(frame)
                if frame.cn == "2051":
                    writer.write(data_ack(frame))
            await writer.drain()

    async def wait(self, test: Callable[[Frame], bool], timeout_s: float = 10) -> list[Frame]:
        async with asyncio.timeout(timeout_s):
            while True:
                got = [f for f in self.frames if test(f)]
                if got:
                    return got
                await asyncio.sleep(0.05)


async def test_heartbeats_time_and_requests(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    platform = Platform()
    server = await asyncio.start_server(platform.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = {
        "name": "platform",
        "address": f"127.0.0.1:{port}",
        "password": UP_PASSWORD,
        "heartbeat_s": 0.3,
        "mns": [MN_WATER],
    }
    city = await start_gateway(city_config(tmp_path / "city", influx.url, database, [target]))
    try:
        dev = await DeviceClient.connect("127.0.0.1", city.hj212.port)
        await dev.send(minute_upload(1))
        assert (await dev.read_frame()).cn == "9014"
        await dev.close()
        await platform.wait(lambda f: f.cn == "2051")
        beats = await platform.wait(lambda f: f.cn == "9015")
        assert (beats[0].mn, beats[0].pw, beats[0].wants_reply) == (MN_WATER, UP_PASSWORD, False)
        assert platform.writer is not None
        before = datetime.now(BEIJING).replace(tzinfo=None, microsecond=0)
        platform.writer.write(request("1011", "20260401000000001"))
        platform.writer.write(request("1012", "20260401000000002"))
        platform.writer.write(request("1011", "20260401000000003", pw="wrong"))
        platform.writer.write(request("1011", "20260401000000004", mn="LD130133000015"))
        await platform.writer.drain()
        done = await platform.wait(lambda f: f.cn == "9012" and f.qn == "20260401000000002")
        refusals = await platform.wait(lambda f: f.qn == "20260401000000004")
    finally:
        await city.shutdown()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
    assert done
    by_qn: dict[str, list[str]] = {}
    for f in platform.frames:
        if f.qn:
            by_qn.setdefault(f.qn, []).append(f.cn)
    assert by_qn["20260401000000001"] == ["9011", "1011", "9012"]
    assert by_qn["20260401000000002"] == ["9011", "9012"]
    time_answer = next(f for f in platform.frames if f.cn == "1011" and f.qn == "20260401000000001")
    shown = parse_hj212_time(parse_cp(time_answer.cp).params["SystemTime"])
    assert before <= shown <= datetime.now(BEIJING).replace(tzinfo=None)
    wrong = [f for f in platform.frames if f.qn == "20260401000000003"]
    assert [(f.cn, parse_cp(f.cp).params["QnRtn"]) for f in wrong] == [("9011", "3")]
    assert [(f.cn, parse_cp(f.cp).params["QnRtn"]) for f in refusals] == [("9011", "4")]


async def test_without_ack_frames_go_in_order_and_count_as_sent(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    platform = Platform()
    server = await asyncio.start_server(platform.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = {"name": "noack", "address": f"127.0.0.1:{port}", "ack": False}
    city = await start_gateway(city_config(tmp_path / "city", influx.url, database, [target]))
    total = 30
    try:
        dev = await DeviceClient.connect("127.0.0.1", city.hj212.port)
        for i in range(total):
            await dev.send(minute_upload(i))
            assert (await dev.read_frame()).cn == "9014"
        await dev.close()
        uploads = await platform.wait(
            lambda f: f.cn == "2051" and f.qn == minute_qn(total - 1), timeout_s=20
        )
        service = city.forward
        assert service is not None
        await wait_until(lambda: service.status()[0]["backlog_bytes"] == 0, 10, "caught up")
    finally:
        await city.shutdown()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
    assert uploads
    sent = [f for f in platform.frames if f.cn == "2051"]
    assert [f.qn for f in sent] == [minute_qn(i) for i in range(total)]
    assert all(not f.wants_reply and f.pw == "123456" for f in sent)  # the device's own PW
    logged = service.targets[0].deliveries.read()
    assert len(logged) == total and all(line["acked_at"] is None for line in logged)
