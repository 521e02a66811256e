"""The archive in a running gateway (real sockets, InfluxDB): accepted and refused frames
appear with their verdicts and exact bytes, and an anomaly's evidence pack holds its frames
with a chain proof that checks."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from adapters.hj212.device import DeviceClient
from gateway.archive.files import day_files
from gateway.archive.record import decode
from gateway.archive.verify import Verified, verify
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.frames import MN_WATER, qn_for, upload

ROOT = Path(__file__).resolve().parents[2]


def archived(directory: Path) -> list[dict[str, object]]:
    """Every record of the archive, oldest first, as a dict."""
    out: list[dict[str, object]] = []
    for _, path in day_files(directory):
        for line in path.read_bytes().splitlines(keepends=True):
            rec = decode(line)
            r = rec.record
            fields = ("peer", "conn", "mn", "crc", "verdict", "raw", "data_time")
            out.append({"hash": rec.hash, "prev": rec.prev, **{f: getattr(r, f) for f in fields}})
    return out


async def test_accepted_and_refused_frames_are_archived_as_received(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    gw = Gateway(gateway_config())
    await gw.start()
    sent: list[tuple[bytes, str]] = []
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        good = upload(qn=qn_for(1), data_time=datetime(2026, 4, 2, 8), values={"w01018": 12.5})
        await dev.send(good)
        assert (await dev.read_frame()).cn == "9014"
        sent.append((good, "accepted"))
        wrong_pw = upload(qn=qn_for(2), pw="not-it")
        bad_crc = bytearray(upload(qn=qn_for(3)))
        bad_crc[-3] = ord("0") if bad_crc[-3] != ord("0") else ord("1")  # a CRC digit
        unknown = upload(qn=qn_for(4), mn="99999999999999")
        for raw, verdict in (
            (wrong_pw, "bad_password"),
            (bytes(bad_crc), "crc"),
            (unknown, "unknown_mn"),
        ):
            await dev.send(raw)
            sent.append((raw, verdict))
        assert await dev.expect_nothing(0.5)  # refused: no answer
        other = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        last = upload(qn=qn_for(5), data_time=datetime(2026, 4, 2, 9), values={"w01018": 13.0})
        await other.send(last)
        assert (await other.read_frame()).cn == "9014"
        sent.append((last, "accepted"))
        await dev.close()
        await other.close()
    finally:
        await gw.shutdown()
    directory = gw.loaded.data_dir / "archive"
    records = archived(directory)
    # the frame's bytes from ## to its CRC, as framed (the CR LF trailer is framing)
    assert [(r["raw"], r["verdict"]) for r in records] == [(f[:-2], v) for f, v in sent]
    assert [r["mn"] for r in records] == [MN_WATER] * 3 + ["99999999999999", MN_WATER]
    assert records[0]["crc"] == "hj212" and records[2]["crc"] == "none"
    assert len({r["conn"] for r in records[:4]}) == 1 and records[4]["conn"] != records[0]["conn"]
    assert all(str(r["peer"]).startswith("127.0.0.1:") for r in records)
    assert records[0]["data_time"] is not None and records[1]["data_time"] is None
    result = verify(directory)
    assert isinstance(result, Verified) and result.records == 5
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "archive",
            "frames",
            "--dir",
            str(directory),
            "--mn",
            MN_WATER,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "4 frames" in out.stderr
    assert out.stdout.count(" accepted ") == 2 and " bad_password " in out.stdout


async def test_the_evidence_pack_holds_the_anomalys_frames_and_a_proof_that_checks(
    gateway_config: Callable[..., LoadedConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", "officer-token:viewer")
    gw = Gateway(gateway_config())
    await gw.start()
    frames: list[bytes] = []
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        for i, (hour, value) in enumerate([(8, 10.0), (9, 80.0), (10, 90.0), (11, 20.0)]):
            raw = upload(
                qn=qn_for(600 + i), data_time=datetime(2026, 4, 7, hour), values={"w01018": value}
            )
            frames.append(raw)
            await dev.send(raw)
            assert (await dev.read_frame()).cn == "9014"
        await dev.close()
        assert gw.anomalies is not None and gw.api is not None
        for _ in range(100):
            items, _total = gw.anomalies.query(type_="over_limit")
            if items and items[0].state == "closed":
                break
            await asyncio.sleep(0.05)
        anomaly = items[0]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api.port}") as client:
            reply = await client.get(
                f"/api/v1/anomalies/{anomaly.id}/evidence.zip",
                headers={"Authorization": "Bearer officer-token"},
            )
        assert reply.status_code == 200
    finally:
        await gw.shutdown()
    pack = zipfile.ZipFile(io.BytesIO(reply.content))
    names = pack.namelist()
    assert {
        "frames/records.txt",
        "frames/frames.csv",
        "frames/proof.json",
        "frames/说明.txt",
    } <= set(names)
    lines = pack.read("frames/records.txt").splitlines()
    got = [decode(line).record.raw for line in lines]
    assert got == [f[:-2] for f in frames[1:]]  # 09:00 to 11:00: DataTime in the window
    proof = json.loads(pack.read("frames/proof.json"))
    for line, item in zip(lines, proof["frames"], strict=True):
        digest, prev, body = line.split(b" ", 2)
        assert hashlib.sha256(prev + body).hexdigest() == digest.decode() == item["hash"]
        assert prev.decode() == item["prev"]
    directory = gw.loaded.data_dir / "archive"
    (day,) = proof["days"]
    assert day["chain_checks"] is True
    day_file = (directory / f"{day['day']}.frames").read_bytes().splitlines()
    assert day_file[-1].split(b" ")[0].decode() == day["last_hash"]
    for item in proof["frames"]:  # each frame sits in the day file where the proof says
        assert day_file[item["line"] - 1].split(b" ")[0].decode() == item["hash"]
    sums = dict(reversed(x.split("  ")) for x in pack.read("SHA256SUMS").decode().splitlines())
    assert sums["frames/records.txt"] == hashlib.sha256(pack.read("frames/records.txt")).hexdigest()
    assert "原始报文" in pack.read("summary.html").decode()
    assert "sha256sum" in pack.read("frames/说明.txt").decode()
