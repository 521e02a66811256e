"""Targets that never acknowledge, refuse the password, or close every connection: each is
counted (metrics and status); the good target beside them gets everything."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import REGISTRY

from adapters.hj212.builder import request_answer
from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import parse_frame
from adapters.hj212.framer import Framer
from devkit import localstack

from .kit import (
    UP_PASSWORD,
    city_config,
    minute_upload,
    provincial_config,
    start_gateway,
    wait_until,
    wait_values,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def never_acks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass
    writer.close()


async def refuses_password(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    framer = Framer()
    while chunk := await reader.read(65536):
        for raw in framer.feed(chunk):
            writer.write(request_answer(parse_frame(raw), qn_rtn=3))  # 9011: PW wrong
        await writer.drain()
    writer.close()


async def closes_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_bad_targets_are_counted_and_the_good_one_is_unaffected(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> None:
    suffix = uuid.uuid4().hex[:6]  # metric labels of this test alone
    servers = []
    targets: list[dict[str, object]] = []
    for kind, handler in (
        ("silent", never_acks),
        ("refuser", refuses_password),
        ("closer", closes_at_once),
    ):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        targets.append({"name": f"{kind}-{suffix}", "address": f"127.0.0.1:{port}"})
    up_db = "up_" + uuid.uuid4().hex[:10]
    up_port = localstack.free_port()
    province = await start_gateway(provincial_config(tmp_path / "prov", influx.url, up_db, up_port))
    targets.append({"name": f"good-{suffix}", "address": f"127.0.0.1:{up_port}"})
    for t in targets:
        t.update(password=UP_PASSWORD, ack_timeout_s=0.5, backoff_min_s=0.1, backoff_max_s=0.3)
    city = await start_gateway(city_config(tmp_path / "city", influx.url, database, targets))
    total = 20
    try:
        dev = await DeviceClient.connect("127.0.0.1", city.hj212.port)
        for i in range(total):
            await dev.send(minute_upload(i))
            assert (await dev.read_frame()).cn == "9014"  # the devices' acks go on
        await dev.close()
        got = await wait_values(influx.url, up_db, total)
        assert sorted(got) == [float(i) for i in range(total)]
        await wait_until(
            lambda: sample("forward_retried_total", target=f"silent-{suffix}") >= 2, 20, "retries"
        )
        await wait_until(
            lambda: (
                sample("forward_refused_total", target=f"refuser-{suffix}", reason="bad_password")
                >= 2
            ),
            20,
            "refusals",
        )
        await wait_until(
            lambda: (
                sample("forward_refused_total", target=f"closer-{suffix}", reason="closed") >= 1
            ),
            20,
            "closed connections",
        )
        assert city.forward is not None
        status = {s["name"].split("-")[0]: s for s in city.forward.status()}
    finally:
        await city.shutdown()
        await province.shutdown()
        for server in servers:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
    assert status["good"]["acked"] >= total and status["good"]["refused"] == 0
    assert status["silent"]["acked"] == 0 and status["silent"]["retried"] >= 2
    assert status["refuser"]["acked"] == 0 and status["refuser"]["refused"] >= 2
    assert status["closer"]["acked"] == 0 and status["closer"]["refused"] >= 1
    # none of the bad ones moved its cursor past the first frame
    for name in ("silent", "refuser", "closer"):
        assert status[name]["cursor"]["offset"] == 0
    assert sample("forward_acked_total", target=f"good-{suffix}") >= total
