"""The simulator's plants and frames, without servers: deterministic days, every scripted fault
in the timeline, frames that parse back to what the plant recorded (2005, 2017 and 2025, bare,
encrypted, split with O2 last, MODBUS-checked), meter arrays, and the expected anomalies."""

from __future__ import annotations

import itertools
import json
import tomllib
from datetime import datetime, timedelta

from adapters.hj212.cp import parse_cp
from adapters.hj212.frame import parse_frame
from adapters.hj212.framer import Framer
from adapters.hj212.reassembly import Reassembler
from adapters.mqtt.payloads import parse_payload
from devkit.simulator.devices import (
    BEIJING,
    COD,
    DUST,
    O2,
    SO2,
    SO2_2005,
    Publish,
    Upload,
    loggers_of,
    permit_plate,
    permit_spelling,
)
from devkit.simulator.expected import SCRIPTED_TYPES, WALL_CLOCK, Expected, expected_anomalies
from devkit.simulator.loggers import encode
from devkit.simulator.plant import HEARTBEAT_AFTER, Plant
from devkit.simulator.registry import registry_toml
from gateway.plates import normalise_plate
from gateway.registry import RegistryFile, parse_key
from gateway.vocabulary import canonical

DAY = datetime(2026, 5, 20)


def uploads(actions: list[Upload | Publish], name: str, cn: str | None = None) -> list[Upload]:
    return [
        a
        for a in actions
        if isinstance(a, Upload) and a.logger.name == name and (cn is None or a.cn == cn)
    ]


def published(actions: list[Upload | Publish], topic: str) -> list[Publish]:
    return [a for a in actions if isinstance(a, Publish) and a.topic == topic]


def whole(raw: bytes) -> bytes:
    (frame,) = Framer().feed(raw)
    return frame


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
    assert hourly == {DAY + timedelta(hours=h) for h in range(18) if h != 5}  # none from 18:00
    assert (loggers_of(0)["DW1"].mn, "2061", DAY + timedelta(hours=5)) in plant.history  # kept
    assert (loggers_of(0)["DW1"].mn, "2061", DAY + timedelta(hours=18)) not in plant.history
    beats = [a.at for a in uploads(scripted, "DW1", "9015") if a.at >= DAY + timedelta(hours=18)]
    assert max(beats) >= DAY + timedelta(hours=23, minutes=30)  # heartbeats go on
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
    gate = published(scripted, "gate/SIM0/G1")
    assert any("国四" in str(a.payload) and "T14:30" in str(a.payload) for a in gate)
    assert any(permit_plate(0) in str(a.payload) and "T14:50" in str(a.payload) for a in gate)
    assert not any("国四" in str(a.payload) for a in normal if isinstance(a, Publish))


def test_flow_after_the_stop_is_flagged_f_and_low() -> None:
    scripted = Plant(0).day(DAY, scripted=True)
    flows = {
        a.data_time: parse_cp(a.cp).items["a00000"]
        for a in uploads(scripted, "DA1", "2051")
        if a.data_time is not None and DAY + timedelta(hours=12) <= a.data_time
    }
    first_f = min(t for t, v in flows.items() if v["Flag"] == "F")
    assert first_f == DAY + timedelta(hours=12, minutes=40)
    assert all(float(v["Avg"]) < 3.0 for t, v in flows.items() if v["Flag"] == "F")


def test_the_boiler_logger_speaks_2005_with_bare_frames() -> None:
    for k in (0, 1):
        actions = Plant(k).day(DAY, scripted=True)
        spec = loggers_of(k)["DB1"]
        hours = uploads(actions, "DB1", "2061")
        assert [a.data_time for a in hours] == [DAY + timedelta(hours=h) for h in range(24)]
        bare = [a for a in hours if a.bare]
        assert bare and all(not a.expect_reply for a in bare) and len(bare) < len(hours)
        for upload in hours:
            frame = parse_frame(whole(encode(spec, upload, "20260520010000001")[0]))
            assert frame.version == 0 and frame.crc == "hj212"
            assert (frame.qn is None, frame.flag is None) == (upload.bare, upload.bare)
            cp = parse_cp(frame.cp)
            assert set(cp.items) == {"S01", "B02", "02", "03", "01"}
            assert all("ZsAvg" not in values for values in cp.items.values())
        fault = next(a for a in hours if a.data_time == DAY + timedelta(hours=7))
        items = parse_cp(fault.cp).items
        so2, o2 = float(items[SO2_2005]["Avg"]), float(items["S01"]["Avg"])
        assert so2 < 100 < so2 * (21 - 9) / (21 - o2)
        beat = next(a for a in uploads(actions, "DB1", "9015"))
        assert parse_frame(whole(encode(spec, beat, "20260520001500001")[0])).qn is not None


def test_frames_parse_back_encrypted_split_with_o2_last_and_modbus() -> None:
    for k in (0, 1):
        plant = Plant(k)
        specs = loggers_of(k)
        actions = plant.day(DAY, scripted=True)
        key = parse_key(specs["DA1"].sm4_key or "")
        for hour in uploads(actions, "DA1", "2061"):
            frames = encode(specs["DA1"], hour, "20260520010000001")
            assert len(frames) == (2 if k == 1 else 1)
            reassembler: Reassembler[None] = Reassembler()
            merged = None
            parts = []
            for raw in frames:
                frame = parse_frame(whole(raw), lambda mn, key=key: key)
                assert frame.encrypted and frame.crc == "hj212" and frame.version == 2
                parts.append(set(parse_cp(frame.cp).items))
                merged = reassembler.add(frame, parse_cp(frame.cp), 0.0, None)
            assert merged is not None and merged.items == parse_cp(hour.cp).items
            zs = any("ZsAvg" in values for values in merged.items.values())
            if k == 1:  # O2 in the last packet, the pollutants in the first; no ZsAvg
                assert O2 in parts[-1] and O2 not in parts[0] and SO2 in parts[0]
                assert not zs
        water = uploads(actions, "DW1", "2061")
        crcs = [
            parse_frame(whole(encode(specs["DW1"], a, "20260520010000001")[0])).crc for a in water
        ]
        assert ("modbus" in crcs) == (k == 0) and crcs.count("hj212") >= 14


def test_split_faults_are_over_only_at_the_reference_o2() -> None:
    actions = Plant(1).day(DAY, scripted=True)
    verdicts = {}
    for hour in uploads(actions, "DA1", "2061"):
        items = parse_cp(hour.cp).items
        if items[SO2]["Flag"] != "N":
            continue
        so2, o2 = float(items[SO2]["Avg"]), float(items[O2]["Avg"])
        assert hour.data_time is not None
        verdicts[hour.data_time.hour] = (so2 > 100, so2 * (21 - 9) / (21 - o2) > 100)
    assert verdicts[6] == (True, False)  # must not give an anomaly
    assert verdicts[8] == (False, True)
    assert all(v == (False, False) for h, v in verdicts.items() if h not in (6, 8))


def test_treatment_meter_publishes_arrays_and_the_others_objects() -> None:
    actions = Plant(0).day(DAY, scripted=True)
    arrays = published(actions, "power/SIM0/T1")
    assert len(arrays) == 48 and all(isinstance(a.payload, list) for a in arrays)
    readings = [r for a in arrays for r in parse_payload("power", json.dumps(a.payload).encode())]
    assert len(readings) == 288
    first = readings[0].time.astimezone(BEIJING).replace(tzinfo=None)
    assert first == DAY and all(
        b.time - a.time == timedelta(minutes=5) for a, b in itertools.pairwise(readings)
    )
    stop = next(a for a in arrays if "T08:00:00" in json.dumps(a.payload))
    assert stop.at == DAY + timedelta(hours=8, minutes=25)  # published with its last reading
    payload = stop.payload
    assert isinstance(payload, list) and payload[0]["time"] == "2026-05-20T08:00:00"
    assert float(str(payload[0]["p_kw"])) < 5  # off
    for meter in ("P1", "P2", "P3"):
        objects = [a.payload for a in published(actions, f"power/SIM0/{meter}")]
        assert len(objects) == 288 and all(isinstance(p, dict) for p in objects)
    line3 = [p for a in published(actions, "power/SIM0/P3") if isinstance(p := a.payload, dict)]
    assert all(float(str(p["p_kw"])) >= 20 for p in line3)  # L3 never stops


def test_loggers_are_never_quiet_for_longer_than_the_heartbeat_interval() -> None:
    actions = Plant(1).day(DAY, scripted=False)
    for name in ("DA1", "DB1", "DW1", "DV1"):
        times = [DAY] + [a.at for a in uploads(actions, name)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= HEARTBEAT_AFTER, name
    assert len(uploads(actions, "DW1", "9015")) == 24 * 3  # three between hourly uploads


def test_the_registry_validates_with_permits_spelt_otherwise() -> None:
    data = RegistryFile.model_validate(tomllib.loads(registry_toml(2, logger_offline_after_s=30)))
    for k, ent in enumerate(data.enterprises):
        assert permit_spelling(k) != permit_plate(k)
        assert normalise_plate(permit_spelling(k)) == permit_plate(k)
        boiler = next(o for o in ent.outlets if o.id == "DB1")
        assert boiler.version == "2005"
        assert {canonical(c, "2005") for c in boiler.pollutants} == {SO2, "a21002"}
        assert SO2_2005 in boiler.pollutants  # one limit by its 2005 code, one by its 2017 code
        assert ent.plans["orange"].stop_lines == ent.plans["red"].stop_lines == ["L3"]


def test_expected_anomalies_cover_every_scripted_type() -> None:
    for k in (0, 1):
        expected = expected_anomalies(DAY, k)
        assert expected == sorted(expected, key=Expected.key)
        assert {e.type for e in expected} == set(SCRIPTED_TYPES)
        over = [e.subject for e in expected if e.type == "over_limit"]
        assert len(over) == (3 if k == 1 else 2)  # DW1, DB1, and the split DA1
        l3 = next(e for e in expected if e.subject == f"line:SIM{k}/L3")
        assert l3.started_at == datetime(2026, 5, 20, 14, tzinfo=BEIJING)
        assert l3.ended_at == datetime(2026, 5, 20, 22, tzinfo=BEIJING)
        offline = next(e for e in expected if e.type == "device_offline")
        assert offline.started_at == WALL_CLOCK and offline.ended_at is None
        seen = Expected.of(
            f"SIM{k}", "device_offline", offline.subject, datetime.now(BEIJING), None
        )
        assert seen == offline
