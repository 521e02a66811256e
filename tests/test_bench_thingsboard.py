"""What ``bench-thingsboard`` writes and checks: the ThingsBoard gateway's config files, the
mapping of the bench's topic, the tally of readings, and the stand-in platform's broker (a
real Mosquitto). The benchmark itself is not run here."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devkit import bench_thingsboard as tb
from devkit import localstack
from devkit.bench_mqtt import _message


def _files(tmp_path: Path, kind: str, count: int = 50_000) -> dict[str, Any]:
    storage = tb.storage_config(kind, tmp_path / "data", count, 1000)
    folder = tb.write_tb_config(tmp_path / "tb", 1883, 1884, "bench-tb-x", storage)
    return {name: json.loads((folder / name).read_text()) for name in tb.CONFIG_FILES}


@pytest.mark.parametrize("kind", tb.STORAGES)
def test_gateway_config_points_at_loopback_with_room_for_the_load(
    tmp_path: Path, kind: str
) -> None:
    files = _files(tmp_path, kind)
    main = files["tb_gateway.json"]
    platform = main["thingsboard"]
    assert (platform["host"], platform["port"]) == ("127.0.0.1", 1884)
    assert platform["remoteShell"] is platform["remoteConfiguration"] is False
    assert platform["statistics"]["enable"] is False
    assert platform["security"] == {"type": "accessToken", "accessToken": tb.TOKEN}
    assert main["connectors"] == [{"type": "mqtt", "name": "devices", "configuration": "mqtt.json"}]
    storage = main["storage"]
    assert storage["type"] == kind
    if kind == "memory":
        assert storage["max_records_count"] >= 50_000
        assert storage["read_records_count"] == 1000
    elif kind == "file":
        assert storage["max_file_count"] * storage["max_records_per_file"] >= 50_000
        assert storage["max_records_between_fsync"] == 1  # durable: fsync per record
        assert storage["data_folder_path"] == f"{tmp_path / 'data'}/"
    else:
        assert storage["data_file_path"] == f"{tmp_path / 'data'}/"  # a folder: ends in /
    levels = {logger["level"] for logger in files["logs.json"]["loggers"].values()}
    assert levels == {"WARNING"}


def test_connector_keeps_a_persistent_session_on_the_devices_broker(tmp_path: Path) -> None:
    broker = _files(tmp_path, "file")["mqtt.json"]["broker"]
    assert (broker["host"], broker["port"], broker["clientId"]) == ("127.0.0.1", 1883, "bench-tb-x")
    assert (broker["version"], broker["cleanSession"]) == (4, False)


def test_mapping_turns_the_bench_topic_and_payload_into_the_device_and_its_series(
    tmp_path: Path,
) -> None:
    (mapping,) = _files(tmp_path, "file")["mqtt.json"]["mapping"]
    # the connector's rules (tb_utility.topic_to_regex, mqtt utils.get_value_from_topic)
    topic_regex = re.escape(mapping["topicFilter"]).replace(r"\+", "[^/]+").replace(r"\#", ".+")
    assert re.fullmatch(topic_regex, tb.TOPIC)
    assert not re.fullmatch(topic_regex, "bench/gate/BENCH/G1")
    found = re.search(mapping["converter"]["deviceInfo"]["deviceNameExpression"], tb.TOPIC)
    assert found is not None and found.lastindex is not None
    assert found.group(found.lastindex) == tb.DEVICE
    series = mapping["converter"]["timeseries"]
    payload = json.loads(_message(7))
    assert {s["key"]: s["value"] for s in series} == {"p_kw": "${p_kw}", "kwh": "${kwh}"}
    assert {s["tsField"] for s in series} == {"${time}"}
    assert set(tb.FIELDS) | {"time"} == set(payload)
    assert mapping["subscriptionQos"] == 1


def test_unknown_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown storage 'redis'"):
        tb.storage_config("redis", Path("."), 1, 1)


def test_expected_reading_is_what_the_bench_publishes() -> None:
    ms, values = tb.expected(3)
    assert ms == 1748736003000  # 2025-06-01T00:00:03+00:00
    assert values == {"p_kw": 3.0, "kwh": 3.0}
    assert tb.expected(501)[1] == {"p_kw": 1.0, "kwh": 501.0}


def _telemetry(entries: list[dict[str, Any]], device: str = tb.DEVICE) -> bytes:
    return json.dumps({device: entries}).encode()


def test_tally_counts_a_reading_once_both_series_arrive_right() -> None:
    tally = tb.Tally(4)
    t0, v0 = tb.expected(0)
    t1, v1 = tb.expected(1)
    t2, _ = tb.expected(2)
    assert tally.telemetry(_telemetry([{"ts": t0, "values": v0}])) == 1
    # the series of one reading split over two entries, then over two messages
    assert tally.telemetry(_telemetry([{"ts": t1, "values": {"p_kw": v1["p_kw"]}}])) == 0
    assert tally.telemetry(_telemetry([{"ts": t1, "values": {"kwh": v1["kwh"]}}])) == 1
    assert tally.telemetry(_telemetry([{"ts": t0, "values": v0}])) == 0  # sent twice
    assert tally.telemetry(_telemetry([{"ts": t2, "values": {"p_kw": 9.0, "kwh": 2.0}}])) == 0
    assert tally.telemetry(_telemetry([{"ts": t0 + 500, "values": v0}])) == 0  # not a reading
    assert tally.telemetry(_telemetry([{"ts": tb.expected(4)[0], "values": v0}])) == 0
    assert tally.telemetry(_telemetry([{"ts": t0, "values": v0}], device="OTHER/M9")) == 0
    assert (tally.verified, tally.lost, tally.duplicates) == (2, 2, 1)
    assert (tally.wrong, tally.foreign) == (3, 1)


def test_tally_of_the_published_messages_verifies_every_one() -> None:
    tally = tb.Tally(1000)
    assert sum(tally.published(_message(i)) for i in range(1000)) == 1000
    assert tally.published(_message(999)) == 0
    assert (tally.verified, tally.lost, tally.duplicates, tally.wrong) == (1000, 0, 1, 0)


def test_environment_has_its_config_folder_and_no_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("host", "thingsboard.cloud")
    monkeypatch.setenv("TB_GW_ACCESS_TOKEN", "x")
    monkeypatch.setenv("NO_PROXY", "*")
    env = tb.tb_environment(tmp_path)
    assert "host" not in env and "TB_GW_ACCESS_TOKEN" not in env and "NO_PROXY" not in env
    assert env["TB_GW_CONFIG_DIR"] == f"{tmp_path}/"
    assert env["BENCH_CONNECTED_FILE"] == str(tmp_path / "connected-at")
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://127.0.0.1:9"


def test_table_gives_the_ratio_to_each_thingsboard_run() -> None:
    full = tb.Tally(2)
    full.published(_message(0))
    full.published(_message(1))
    results = [
        tb.Result("pollution-gateway MQTT -> InfluxDB", 6000.0, 150.0, full),
        tb.Result("ThingsBoard gateway 3.8.5, file storage", 2000.0, 300.0, tb.Tally(2)),
    ]
    text = tb.table(results)
    assert "throughput 3.00x, CPU per reading 2.00x less" in text
    assert re.search(r"file storage\s+2,000\s+300\.0\s+0/2\s+2\s", text)


def test_cpu_seconds_follows_this_process() -> None:
    before = tb.cpu_seconds(os.getpid())
    start = time.process_time()
    while time.process_time() - start < 0.2:
        sum(range(1000))
    assert tb.cpu_seconds(os.getpid()) - before >= 0.1


@pytest.fixture
def platform_broker(tmp_path: Path) -> Iterator[localstack.ManagedProcess]:
    broker = tb.platform_broker(tmp_path / "platform")
    broker.start()
    yield broker
    broker.stop()


def test_platform_answers_session_limits_and_does_not_echo_the_gateway(
    platform_broker: localstack.ManagedProcess,
) -> None:
    platform = tb.Platform(platform_broker.port, 1)
    platform.pid = os.getpid()  # the process whose CPU it reads
    got: list[tuple[str, bytes]] = []
    answered = threading.Event()

    def on_message(_: paho.Client, __: object, message: paho.MQTTMessage) -> None:
        got.append((message.topic, bytes(message.payload)))
        answered.set()

    gateway = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-gw-probe")
    gateway.username_pw_set(tb.TOKEN)
    gateway.on_message = on_message
    gateway.connect("127.0.0.1", platform_broker.port)
    gateway.loop_start()
    try:
        gateway.subscribe("v1/devices/me/rpc/request/+", qos=1)
        gateway.subscribe("v1/devices/me/rpc/response/+", qos=1)
        time.sleep(0.5)
        request = json.dumps({"method": "getSessionLimits", "params": {"timeout": 5000}})
        gateway.publish("v1/devices/me/rpc/request/1", request, qos=1)
        assert answered.wait(10)
        time.sleep(0.5)  # an echo of the request would arrive by now
        point = json.dumps({tb.DEVICE: [{"ts": tb.expected(0)[0], "values": tb.expected(0)[1]}]})
        gateway.publish("v1/gateway/telemetry", point, qos=1)
        assert platform.done.wait(10)
    finally:
        gateway.loop_stop()
        gateway.disconnect()
        platform.close()
    assert got == [("v1/devices/me/rpc/response/1", json.dumps(tb.SESSION_LIMITS).encode())]
    assert platform.connected.is_set() and platform.tally.verified == 1


def test_median_of_rounds_keeps_the_worst_tally() -> None:
    whole, short = tb.Tally(1), tb.Tally(1)
    whole.published(_message(0))
    rounds = [
        [tb.Result("ours", 100.0, 10.0, whole), tb.Result("tb", 50.0, 30.0, whole)],
        [tb.Result("ours", 300.0, 20.0, whole), tb.Result("tb", 70.0, 10.0, short)],
        [tb.Result("ours", 200.0, 40.0, whole), tb.Result("tb", 60.0, 20.0, whole)],
    ]
    ours, other = tb.median(rounds)
    assert (ours.name, ours.rate, ours.cpu_us, ours.tally.lost) == ("ours", 200.0, 20.0, 0)
    assert (other.rate, other.cpu_us, other.tally.lost) == (60.0, 20.0, 1)
