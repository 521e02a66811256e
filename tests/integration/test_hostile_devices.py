"""Hostile and broken devices over real sockets into a real InfluxDB: what the gateway refuses
gets no answer and no point, and nothing it answered is refused by InfluxDB later (the poison
file stays empty); a device with an SM4 key must encrypt unless it is migrating."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import pytest

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway import metrics
from gateway.config import LoadedConfig, load_config
from gateway.supervisor import Gateway
from tests.conftest import REGISTRY, influx_rows, wait_rows, write_config
from tests.frames import KEY_2025, MN_2025, MN_WATER, qn_for, upload


def rejected(reason: str) -> float:
    value: float = metrics.FRAMES_REJECTED.labels(adapter="hj212", reason=reason)._value.get()
    return value


def water(qn: str, cp: str) -> bytes:
    head: list[tuple[str, str | int]] = [
        ("QN", qn),
        ("ST", "32"),
        ("CN", "2061"),
        ("PW", "123456"),
        ("MN", MN_WATER),
        ("Flag", 5),
    ]
    return build_frame(build_segment(head, cp))


async def settled(gw: Gateway, influx: localstack.ManagedProcess, database: str) -> None:
    """A last good upload, acked and in InfluxDB: what came before it is written too."""
    dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
    await dev.send(
        upload(qn=qn_for(999), data_time=datetime(2026, 3, 9, 8), values={"w01018": 1.0})
    )
    assert (await dev.read_frame()).qn == qn_for(999)
    await dev.close()
    rows = await wait_rows(influx.url, database, "SELECT avg FROM emission WHERE avg = 1.0", 1)
    assert len(rows) == 1
    await asyncio.sleep(0.3)  # a batch with a refused line would be set aside by now


def poison(gw: Gateway) -> bytes:
    path: Path = gw.loaded.data_dir / "poison.lp"
    return path.read_bytes() if path.exists() else b""


async def test_an_upload_with_a_bad_qn_is_neither_stored_nor_answered(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    before = rejected("bad_qn")
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    for qn in ("2026030109000012", "20261399090000123", "2026030109000012x"):
        await dev.send(upload(qn=qn, values={"w01018": 77.7}))
    assert await dev.expect_nothing(1.0)
    assert rejected("bad_qn") == before + 3
    await dev.close()
    await settled(gateway, influx, database)
    assert influx_rows(influx.url, database, "SELECT * FROM emission WHERE avg = 77.7") == []


@pytest.mark.parametrize(
    ("cp", "reason"),
    [
        ("DataTime=20260301080000;w0101\\-Avg=5.5,w0101\\-Flag=N", "cp"),  # code ends in \
        ("DataTime=99991231235959;w01018-Avg=5.5,w01018-Flag=N", "implausible_time"),
        ("DataTime=2026-03-01 08:00;w01018-Avg=5.5,w01018-Flag=N", "bad_time"),
        ("w01018-Avg=5.5,w01018-Flag=N", "bad_time"),
        ("DataTime=20260301080000;w01018-Avg=5.5,w01018-Flag=N\\", "bad_flag"),
    ],
)
async def test_what_influxdb_would_refuse_is_refused_before_the_answer(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str, cp: str, reason: str
) -> None:
    before = rejected(reason)
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    await dev.send(water(qn_for(1), cp))
    assert await dev.expect_nothing(1.0)
    assert rejected(reason) == before + 1
    await dev.close()
    await settled(gateway, influx, database)
    assert influx_rows(influx.url, database, "SELECT * FROM emission WHERE avg = 5.5") == []
    assert influx_rows(influx.url, database, "SELECT * FROM emission_unrecognised") == []
    assert poison(gateway) == b""


async def test_plaintext_from_a_keyed_device_is_refused(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    before = rejected("plaintext")
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    await dev.send(upload(mn=MN_2025, st="31", flag=9, qn=qn_for(2), values={"a21026": 3.3}))
    assert await dev.expect_nothing(1.0)
    assert rejected("plaintext") == before + 1
    await dev.send(
        upload(mn=MN_2025, st="31", flag=9, qn=qn_for(3), values={"a21026": 4.4}, key=KEY_2025)
    )
    ack = await dev.read_frame()
    assert (ack.cn, ack.qn) == ("9014", qn_for(3))
    rows = await wait_rows(
        influx.url, database, f"SELECT * FROM emission WHERE mn = '{MN_2025}'", 1
    )
    assert [r["avg"] for r in rows] == [4.4]
    await dev.close()


@pytest.fixture
async def migrating(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> AsyncIterator[Gateway]:
    registry = REGISTRY.replace(
        'sm4_key = "0000000000000000"', 'sm4_key = "0000000000000000"\n  allow_plaintext = true'
    )
    path = write_config(tmp_path / "gw", influx.url, database, registry=registry)
    gw = Gateway(load_config(path))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.shutdown()


async def test_allow_plaintext_takes_clear_data_and_counts_it(
    migrating: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    before = metrics.PLAINTEXT_UPLOADS._value.get()
    dev = await DeviceClient.connect("127.0.0.1", migrating.hj212.port)
    for i, value in enumerate((3.3, 4.4, 5.5)):
        frame = upload(
            mn=MN_2025,
            st="31",
            flag=9,
            qn=qn_for(10 + i),
            data_time=datetime(2026, 3, 1, 8 + i),
            values={"a21026": value},
            key=KEY_2025 if value == 5.5 else None,  # the last one encrypted
        )
        await dev.send(frame)
        assert (await dev.read_frame()).qn == qn_for(10 + i)
    rows = await wait_rows(
        influx.url, database, f"SELECT * FROM emission WHERE mn = '{MN_2025}'", 3
    )
    assert sorted(r["avg"] for r in rows) == [3.3, 4.4, 5.5]
    assert metrics.PLAINTEXT_UPLOADS._value.get() == before + 2
    await dev.close()


async def test_a_resend_is_answered_and_other_content_under_its_qn_refused(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
    first = upload(qn=qn_for(20), values={"w01018": 6.6})
    await dev.send(first + first)
    assert [(await dev.read_frame()).qn for _ in range(2)] == [qn_for(20)] * 2
    before = rejected("qn_reused")
    await dev.send(upload(qn=qn_for(20), values={"w01018": 9.9}))
    assert await dev.expect_nothing(1.0)
    assert rejected("qn_reused") == before + 1
    await dev.close()
    await settled(gateway, influx, database)
    rows = influx_rows(influx.url, database, "SELECT avg FROM emission WHERE pollutant = 'w01018'")
    assert sorted(r["avg"] for r in rows) == [1.0, 6.6]


async def test_corrupted_copies_of_good_frames_are_never_answered(
    gateway_config: Callable[..., LoadedConfig],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    """Every single-bit flip of one upload, on one connection: none is answered, the
    connection keeps working, only the good frame is stored."""
    gw = Gateway(gateway_config(hj212={"max_inflight_per_connection": 4096}))
    await gw.start()
    try:
        good = upload(qn=qn_for(30), values={"w01018": 8.25})[:-2]
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        for pos in range(6, len(good)):
            flips = []
            for bit in range(8):
                bad = bytearray(good)
                bad[pos] ^= 1 << bit
                if b"\r" not in bad and b"\n" not in bad and b"##" not in bad[2:]:
                    flips.append(bytes(bad) + b"\r\n")
            await dev.send(b"".join(flips))
        await dev.send(good + b"\r\n")
        answers = [await dev.read_frame()]
        assert await dev.expect_nothing(1.0)
        assert [(a.cn, a.qn) for a in answers] == [("9014", qn_for(30))]
        rows = await wait_rows(influx.url, database, "SELECT * FROM emission", 1)
        assert [r["avg"] for r in rows] == [8.25]
        await dev.close()
    finally:
        await gw.shutdown()
