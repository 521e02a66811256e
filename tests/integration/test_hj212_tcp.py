"""HJ 212 over real sockets into a real InfluxDB: replies, durability before ack, framing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.hj212.builder import execution_answer, request_answer
from adapters.hj212.cp import parse_cp
from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import parse_frame
from devkit import localstack
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, vector_frames, wait_rows
from tests.frames import KEY_2025, MN_2025, MN_WATER, qn_for, upload


async def connect(gw: Gateway) -> DeviceClient:
    return await DeviceClient.connect("127.0.0.1", gw.hj212.port)


async def test_upload_is_acked_with_9014_and_stored(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await connect(gateway)
    qn = "20260301090000123"
    await dev.send(upload(qn=qn, data_time=datetime(2026, 3, 1, 8), values={"w01018": 40.1}))
    ack = await dev.read_frame()
    assert (ack.cn, ack.qn, ack.st, ack.mn, ack.pw, ack.flag) == (
        "9014",
        qn,
        "91",
        MN_WATER,
        "123456",
        4,
    )
    assert ack.cp == "" and ack.crc == "hj212"
    rows = await wait_rows(influx.url, database, "SELECT * FROM emission", 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["time"] == "2026-03-01T00:00:00Z"  # 08:00 Beijing
    assert (row["enterprise"], row["outlet"], row["mn"]) == ("E1", "DW001", MN_WATER)
    assert (row["pollutant"], row["interval"], row["avg"], row["flag"]) == (
        "w01018",
        "hour",
        40.1,
        "N",
    )
    assert row["backfill"] is False
    await dev.close()


async def test_ack_only_after_record_is_on_disk_or_in_influx(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await connect(gateway)
    spool_dir = gateway.spool.directory
    for i in range(20):
        value = 1000.0 + i
        await dev.send(
            upload(
                qn=qn_for(i),
                values={"w01018": value},
                data_time=datetime(2026, 3, 1, 8) + timedelta(hours=i),
            )
        )
        ack = await dev.read_frame()
        assert ack.cn == "9014" and ack.qn == qn_for(i)
        # at the moment of the ack, the value must already be durable somewhere
        on_disk = any(
            f"avg={value}".encode() in p.read_bytes() for p in spool_dir.glob("seg-*.log")
        )
        if not on_disk:
            rows = influx_rows(
                influx.url, database, f"SELECT avg FROM emission WHERE avg = {value}"
            )
            assert rows, f"acked value {value} is neither spooled nor in InfluxDB"
    await dev.close()


async def test_vectors_25_to_27_back_to_back_without_crlf(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    vectors = vector_frames()
    dev = await connect(gateway)
    await dev.send(b"".join(vectors[i].encode() for i in ("25", "26", "27")))
    acks = [await dev.read_frame() for _ in range(3)]
    assert [a.qn for a in acks] == ["20190424002721168", "20190424002721279", "20190424002722671"]
    assert all(a.cn == "9014" and a.flag == 4 for a in acks)
    rows = await wait_rows(
        influx.url, database, "SELECT * FROM emission GROUP BY *", 3, needs=("max",)
    )
    by_interval = sorted((r["interval"], r["time"], r["max"]) for r in rows)
    assert by_interval == [
        ("hour", "2019-04-15T17:00:00Z", 27.299999),
        ("minute", "2019-04-15T16:30:00Z", 27.299999),
        ("minute", "2019-04-15T16:40:00Z", 27.299999),
    ]
    await dev.close()


async def test_split_frames_across_reads_and_junk_between(gateway: Gateway) -> None:
    dev = await connect(gateway)
    frame = upload(qn=qn_for(1))
    stream = b"DTU-REG-0001\r\n\x01\x03\x00\x00" + frame + b"\x00\xffjunk" + upload(qn=qn_for(2))
    for i in range(0, len(stream), 7):
        await dev.send(stream[i : i + 7])
        await asyncio.sleep(0)
    assert [(await dev.read_frame()).qn for _ in range(2)] == [qn_for(1), qn_for(2)]
    await dev.close()


async def test_split_packet_upload_each_part_acked_and_all_values_stored(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await connect(gateway)
    t = datetime(2026, 3, 2, 10)
    part1 = upload(
        qn=qn_for(11),
        flag=7,
        data_time=t,
        values={"w01018": 41.0},
        extra_header=[("PNUM", 2), ("PNO", 1)],
    )
    part2 = upload(
        qn=qn_for(12),
        flag=7,
        data_time=t,
        values={"w21003": 2.5},
        extra_header=[("PNUM", 2), ("PNO", 2)],
    )
    await dev.send(part1 + part2)
    acks = [await dev.read_frame() for _ in range(2)]
    assert [(a.cn, a.qn) for a in acks] == [("9014", qn_for(11)), ("9014", qn_for(12))]
    rows = await wait_rows(
        influx.url, database, "SELECT * FROM emission GROUP BY *", 2, needs=("avg",)
    )
    assert sorted((r["pollutant"], r["avg"]) for r in rows) == [("w01018", 41.0), ("w21003", 2.5)]
    assert gateway.hj212.reassembler.expired == 0 and len(gateway.hj212.reassembler) == 0
    await dev.close()


@pytest.mark.parametrize(
    ("mn", "pw", "reason"),
    [("UNKNOWN0001", "123456", "unknown_mn"), (MN_WATER, "wrong", "bad_password")],
)
async def test_unknown_mn_or_wrong_password_gets_nothing(
    gateway: Gateway,
    influx: localstack.ManagedProcess,
    database: str,
    mn: str,
    pw: str,
    reason: str,
) -> None:
    from gateway import metrics

    counter = metrics.FRAMES_REJECTED.labels(adapter="hj212", reason=reason)
    before = counter._value.get()
    dev = await connect(gateway)
    await dev.send(upload(mn=mn, pw=pw, qn=qn_for(5)))
    assert await dev.expect_nothing(1.0)
    assert counter._value.get() == before + 1
    # the connection still works for a registered device
    await dev.send(upload(qn=qn_for(6)))
    assert (await dev.read_frame()).qn == qn_for(6)
    await asyncio.sleep(0.5)
    rows = influx_rows(influx.url, database, f"SELECT * FROM emission WHERE mn = '{mn}'")
    if mn != MN_WATER:
        assert rows == []
    await dev.close()


async def test_heartbeat_and_time_request_answers(gateway: Gateway) -> None:
    dev = await connect(gateway)
    await dev.send(
        b"##0087QN=20260105080030000;ST=31;CN=9015;PW=123456;"
        b"MN=010000A8900016F000169DC0;Flag=9;CP=&&&&E401\r\n"
    )
    reply = await dev.read_frame()
    assert (reply.cn, reply.qn, reply.st, reply.flag) == ("9013", "20260105080030000", "91", 8)
    assert reply.crc == "hj212"
    # heartbeat without the A bit: no answer
    hb = "QN=20260105080031000;ST=31;CN=9015;PW=123456;MN=010000A8900016F000169DC0;Flag=8;CP=&&&&"
    from adapters.hj212.builder import build_frame

    await dev.send(build_frame(hb))
    assert await dev.expect_nothing(0.5)
    seg = "QN=20260105080032000;ST=31;CN=1013;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&&&"
    await dev.send(build_frame(seg))
    notice = await dev.read_frame()
    assert (notice.cn, notice.qn) == ("9013", "20260105080032000")
    setting = await dev.read_frame()
    assert setting.cn == "1012" and setting.mn == MN_2025 and setting.wants_reply
    system_time = parse_cp(setting.cp).params["SystemTime"]
    assert len(system_time) == 14 and system_time.isdigit()
    await dev.close()


async def test_encrypted_2025_frame_is_decrypted_and_stored(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    vectors = vector_frames()
    dev = await connect(gateway)
    await dev.send(vectors["A.2-2"].encode() + b"\r\n")
    ack = await dev.read_frame()
    assert (ack.cn, ack.qn, ack.flag) == ("9014", "20240520210700000", 8)
    rows = await wait_rows(
        influx.url, database, "SELECT * FROM emission GROUP BY *", 3, needs=("min", "avg", "max")
    )
    got = sorted((r["pollutant"], r["interval"], r["min"], r["avg"], r["max"]) for r in rows)
    assert got == [
        ("a01011", "minute", 1.35, 1.35, 1.35),
        ("a01012", "minute", 9.3, 9.3, 9.3),
        ("a01014", "minute", 3.2, 3.211, 3.212),
    ]
    assert {r["time"] for r in rows} == {"2024-05-20T13:06:00Z"}
    await dev.close()


async def test_crc_policy_tolerant_accepts_modbus_strict_refuses(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    frame = vector_frames()["22"].encode() + b"\r\n"  # CRC-16/MODBUS, Flag=5
    for policy, acked in (("tolerant", True), ("strict", False)):
        gw = Gateway(gateway_config(hj212={"crc_policy": policy}))
        await gw.start()
        try:
            dev = await connect(gw)
            await dev.send(frame)
            if acked:
                assert (await dev.read_frame()).cn == "9014"
                assert gw.hj212.crc_seen["C201801010001"] == "modbus"
            else:
                assert await dev.expect_nothing(0.7)
            await dev.close()
        finally:
            await gw.shutdown()


async def test_frame_matching_no_crc_variant_is_never_acked(gateway: Gateway) -> None:
    dev = await connect(gateway)
    await dev.send(vector_frames()["4"].encode() + b"\r\n")  # CRC copied from another frame
    assert await dev.expect_nothing(0.7)
    await dev.close()


async def test_backfill_exchange_marks_points_backfilled(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await connect(gateway)
    await dev.send(upload(qn=qn_for(30), data_time=datetime(2026, 3, 3, 7)))
    await dev.read_frame()
    begin = datetime(2026, 3, 3, 0, tzinfo=UTC)  # 08:00 Beijing
    qn = gateway.hj212.request_history(MN_WATER, "2061", begin, begin + timedelta(minutes=59))
    assert qn is not None
    request = await dev.read_frame()
    assert (request.cn, request.qn, request.pw, request.mn) == ("2061", qn, "123456", MN_WATER)
    params = parse_cp(request.cp).params
    assert params == {"BeginTime": "20260303080000", "EndTime": "20260303085900"}
    await dev.send(request_answer(request))
    await dev.send(upload(qn=qn_for(31), data_time=datetime(2026, 3, 3, 8), values={"w01018": 7.0}))
    assert (await dev.read_frame()).qn == qn_for(31)
    await dev.send(execution_answer(request))
    rows = await wait_rows(influx.url, database, "SELECT * FROM emission WHERE backfill = true", 1)
    assert [(r["pollutant"], r["time"], r["avg"]) for r in rows] == [
        ("w01018", "2026-03-03T00:00:00Z", 7.0)
    ]
    not_backfilled = influx_rows(
        influx.url, database, "SELECT * FROM emission WHERE backfill = false"
    )
    assert {r["time"] for r in not_backfilled} == {"2026-03-02T23:00:00Z"}
    await asyncio.sleep(0.1)
    assert MN_WATER not in gateway.hj212.by_mn[MN_WATER].backfills
    await dev.close()


async def test_rf1_frame_is_stored_as_backfill(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await connect(gateway)
    await dev.send(
        upload(
            mn=MN_2025,
            qn=qn_for(40),
            flag=9,
            extra_header=[("RF", 1)],
            values={"a21026": 12.5},
            st="31",
            key=KEY_2025,
        )
    )
    ack = await dev.read_frame()
    assert (ack.cn, ack.flag) == ("9014", 8)
    rows = await wait_rows(influx.url, database, "SELECT * FROM emission", 1)
    assert rows[0]["backfill"] is True and rows[0]["outlet"] == "DA001"
    await dev.close()


async def test_facility_state_and_running_hours(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    from adapters.hj212.builder import build_frame, build_segment

    dev = await connect(gateway)
    head: list[tuple[str, str | int]] = [
        ("QN", qn_for(50)),
        ("ST", "32"),
        ("CN", "2021"),
        ("PW", "123456"),
        ("MN", MN_WATER),
        ("Flag", 5),
    ]
    await dev.send(build_frame(build_segment(head, "DataTime=20260301100000;SB1-RS=1;SB2-RS=0")))
    head[0], head[2] = ("QN", qn_for(51)), ("CN", "2041")
    await dev.send(build_frame(build_segment(head, "DataTime=20260301000000;SB1-RT=23.5")))
    assert [(await dev.read_frame()).qn for _ in range(2)] == [qn_for(50), qn_for(51)]
    rows = await wait_rows(influx.url, database, "SELECT * FROM facility_state GROUP BY *", 3)
    got = sorted((r["facility"], r["time"], r.get("rs"), r.get("rt_hours")) for r in rows)
    assert got == [
        ("SB1", "2026-02-28T16:00:00Z", None, 23.5),
        ("SB1", "2026-03-01T02:00:00Z", 1, None),
        ("SB2", "2026-03-01T02:00:00Z", 0, None),
    ]
    await dev.close()


async def test_garbage_never_stops_the_server(gateway: Gateway, tmp_path: Path) -> None:
    dev = await connect(gateway)
    await dev.send(b"##9999" + b"x" * 20000 + b"##12ab##0010QN=1&&ABCD\r\n" + bytes(range(256)))
    await dev.send(upload(qn=qn_for(60)))
    assert (await dev.read_frame()).qn == qn_for(60)
    other = await connect(gateway)
    await other.send(upload(qn=qn_for(61)))
    assert (await other.read_frame()).qn == qn_for(61)
    await dev.close()
    await other.close()


async def test_duplicate_upload_is_one_point(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    dev = await connect(gateway)
    frame = upload(qn=qn_for(70), values={"w01018": 5.5})
    await dev.send(frame + frame)
    assert [(await dev.read_frame()).qn for _ in range(2)] == [qn_for(70)] * 2
    await asyncio.sleep(0.6)
    rows = influx_rows(influx.url, database, "SELECT count(avg) FROM emission")
    assert rows[0]["count"] == 1
    await dev.close()


async def test_send_command_to_connected_device(gateway: Gateway) -> None:
    dev = await connect(gateway)
    await dev.send(upload(qn=qn_for(80)))
    await dev.read_frame()
    assert gateway.hj212.send(MN_WATER, b"##0000&&0000\r\n") is True
    assert gateway.hj212.send("NOT-CONNECTED", b"x") is False
    raw = await dev.reader.read(100)
    assert raw == b"##0000&&0000\r\n"
    await dev.close()


def test_parse_frame_used_by_client_rejects_nothing_valid() -> None:
    frame = parse_frame(upload(qn=qn_for(1))[:-2])
    assert frame.crc == "hj212" and frame.cn == "2061"


async def test_hj212_power_codes_become_power_points(
    gateway: Gateway, influx: localstack.ManagedProcess, database: str
) -> None:
    from adapters.hj212.builder import build_frame, build_segment
    from tests.conftest import MN_POWER

    head: list[tuple[str, str | int]] = [
        ("QN", qn_for(90)),
        ("ST", "44"),
        ("CN", "2011"),
        ("PW", "123456"),
        ("MN", MN_POWER),
        ("Flag", 9),
    ]
    cp = (
        "DataTime=20260105080000;d20105-Rtd=220.20,d20105-Flag=N;"
        "d20405-Rtd=0.24,d20405-Flag=N;d30106-Rtd=220.20,d30106-Flag=N"
    )
    dev = await connect(gateway)
    await dev.send(build_frame(build_segment(head, cp)))
    ack = await dev.read_frame()
    assert (ack.cn, ack.qn, ack.flag) == ("9014", qn_for(90), 8)
    rows = await wait_rows(influx.url, database, "SELECT * FROM power", 1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["enterprise"], row["meter"], row["role"], row["line"]) == (
        "E1",
        "PM1",
        "production",
        "L1",
    )
    assert (row["time"], row["ua"], row["p_kw"], row["running"]) == (
        "2026-01-05T00:00:00Z",
        220.2,
        0.48,
        False,
    )  # CT ratio 2 applied to power
    emission = influx_rows(influx.url, database, "SELECT * FROM emission")
    assert [r["pollutant"] for r in emission] == ["d30106"]  # not mapped: kept as sent
    await dev.close()
