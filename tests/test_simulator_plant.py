"""The simulator's plants and frames, without servers: deterministic days, every scripted fault
in the timeline, and frames that parse back to what the plant recorded."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from adapters.hj212.cp import parse_cp
from adapters.hj212.frame import parse_frame
from adapters.hj212.framer import Framer
from adapters.hj212.reassembly import Reassembler
from adapters.hj212.sm4 import parse_key
from gateway.simulator.loggers import encode
from gateway.simulator.plant import (
    COD,
    DUST,
    HEARTBEAT_AFTER,
    Plant,
    Publish,
    Upload,
    loggers_of,
)

DAY = datetime(2026, 5, 20)


def uploads(actions: list[Upload | Publish], name: str, cn: str | None = None) -> list[Upload]:
    return [
        a
        for a in actions
        if isinstance(a, Upload) and a.logger.name == name and (cn is None or a.cn == cn)
    ]


def test_days_are_deterministic_and_time_ordered() -> None:
    first = Plant(3).day(DAY, scripted=True)
    assert first == Plant(3).day(DAY, scripted=True)
    assert [a.at for a in first] == sorted(a.at for a in first)
    assert all(DAY <= a.at <= DAY + timedelta(days=1) for a in first)


def test_the_scripted_day_holds_its_faults_and_a_normal_day_none() -> None:
    plant = Plant(0)
    normal = plant.day(DAY - timedelta(days=1), scripted=False)
    scripted = plant.day(DAY, scripted=True)
    hourly = {a.data_time for a in uploads(scripted, "DW1", "2061")}
    assert DAY + timedelta(hours=5) not in hourly and len(hourly) == 23
    assert (loggers_of(0)["DW1"].mn, "2061", DAY + timedelta(hours=5)) in plant.history  # kept
    cod = {a.data_time: parse_cp(a.cp).items[COD]["Avg"] for a in uploads(scripted, "DW1", "2061")}
    assert [t.hour for t, v in cod.items() if float(v) > 50] == [3]
    assert all(
        float(parse_cp(a.cp).items[COD]["Avg"]) <= 50 for a in uploads(normal, "DW1", "2061")
    )
    zeros = [
        a.data_time
        for a in uploads(scripted, "DA1", "2051")
        if parse_cp(a.cp).items[DUST]["Avg"] == "0.00"
    ]
    assert zeros == [DAY + timedelta(hours=9, minutes=10 * i) for i in range(4)]
    assert max(a.at for a in uploads(scripted, "DV1")) <= DAY + timedelta(hours=11)
    assert uploads(plant.day(DAY + timedelta(days=1), scripted=False), "DV1") == []  # stays dead
    assert [a.expect_reply for a in uploads(scripted, "DW1-impostor")] == [False]
    assert [a.expect_reply for a in uploads(scripted, "unregistered")] == [False]
    assert uploads(normal, "DW1-impostor") == uploads(normal, "unregistered") == []
    gate = [a for a in scripted if isinstance(a, Publish) and a.topic == "gate/SIM0/G1"]
    assert any("国四" in str(a.payload) and "T14:30" in str(a.payload) for a in gate)
    assert not any("国四" in str(a.payload) for a in normal if isinstance(a, Publish))


def test_loggers_are_never_quiet_for_longer_than_the_heartbeat_interval() -> None:
    actions = Plant(1).day(DAY, scripted=False)
    for name in ("DA1", "DW1", "DV1"):
        times = [DAY] + [a.at for a in uploads(actions, name)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= HEARTBEAT_AFTER, name
    assert len(uploads(actions, "DW1", "9015")) == 24 * 3  # three between hourly uploads


def test_frames_parse_back_encrypted_split_and_modbus() -> None:
    for k in (0, 1):
        plant = Plant(k)
        specs = loggers_of(k)
        actions = plant.day(DAY, scripted=True)
        key = parse_key(specs["DA1"].sm4_key or "")
        hour = uploads(actions, "DA1", "2061")[0]
        frames = encode(specs["DA1"], hour, "20260520010000001")
        assert len(frames) == (2 if k == 1 else 1)
        reassembler: Reassembler[None] = Reassembler()
        merged = None
        for raw in frames:
            (whole,) = Framer().feed(raw)
            frame = parse_frame(whole, lambda mn, key=key: key)
            assert frame.encrypted and frame.crc == "hj212" and frame.version == 2
            merged = reassembler.add(frame, parse_cp(frame.cp), 0.0, None)
        assert merged is not None and merged.items == parse_cp(hour.cp).items
        water = uploads(actions, "DW1", "2061")
        crcs = [
            parse_frame(Framer().feed(encode(specs["DW1"], a, "20260520010000001")[0])[0]).crc
            for a in water
        ]
        assert ("modbus" in crcs) == (k == 0) and crcs.count("hj212") >= 19
