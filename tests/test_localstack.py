"""Real-process tests for devkit.localstack (needs Debian's influxdb and mosquitto)."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import localstack
from devkit.localstack import LocalStackError, ManagedProcess

LINE = b"stack,source=S001 cod=12.5 1700000000000000000"


def _write(url: str, db: str, body: bytes) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"{url}/write?db={db}&precision=ns", data=body, method="POST")
    with opener.open(req, timeout=10) as resp:
        status: int = resp.status
        return status


def _cod_values(url: str, db: str) -> list[list[object]]:
    result = localstack.query(url, db, "SELECT cod FROM stack WHERE source = 'S001'")
    series = result["results"][0].get("series", [])
    return series[0]["values"] if series else []


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[ManagedProcess]:
    proc = localstack.influxdb(tmp_path / "influx")
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ManagedProcess]:
    proc = localstack.mosquitto(tmp_path / "mqtt")
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def test_free_port_is_bindable() -> None:
    port = localstack.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_find_binary_missing_names_package() -> None:
    with pytest.raises(LocalStackError, match="install Debian package"):
        localstack.find_binary("no-such-server-binary-xyz")


def test_influxdb_write_query_and_wal_survives_sigkill(influx: ManagedProcess) -> None:
    assert influx.running
    assert influx.url == f"http://127.0.0.1:{influx.port}"
    localstack.create_database(influx.url, "pollution")
    assert _write(influx.url, "pollution", LINE) == 204
    assert _cod_values(influx.url, "pollution") == [["2023-11-14T22:13:20Z", 12.5]]

    port = influx.port
    influx.kill()
    assert not influx.running
    influx.start()
    assert influx.port == port
    assert _cod_values(influx.url, "pollution") == [["2023-11-14T22:13:20Z", 12.5]]

    conf = (influx.data_dir / "influxdb.conf").read_text()
    assert ":8088" not in conf
    assert (influx.data_dir / "wal").is_dir()
    assert (influx.data_dir / "meta").is_dir()


def test_two_influxdb_instances_run_side_by_side(influx: ManagedProcess, tmp_path: Path) -> None:
    other = localstack.influxdb(tmp_path / "influx2")
    try:
        other.start()
        assert other.port != influx.port
        assert influx.running and other.running
    finally:
        other.stop()
    assert not other.running
    other.stop()  # idempotent


def test_start_fails_clearly_when_port_taken(influx: ManagedProcess, tmp_path: Path) -> None:
    clash = localstack.influxdb(tmp_path / "clash", port=influx.port)
    with pytest.raises(LocalStackError, match="in use"):
        clash.start()
    assert not clash.running


def test_mosquitto_accepts_then_refuses_after_stop(broker: ManagedProcess) -> None:
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert _connects(broker.host, broker.port)
    conf = (broker.data_dir / "mosquitto.conf").read_text()
    assert f"listener {broker.port} 127.0.0.1" in conf
    assert "max_queued_messages 100000" in conf

    broker.stop()
    assert not broker.running
    assert not _connects(broker.host, broker.port)
    # Clean shutdown writes the persistence file into the data dir.
    assert (broker.data_dir / "mosquitto.db").is_file()

    broker.start()
    assert _connects(broker.host, broker.port)
    broker.kill()
    assert not _connects(broker.host, broker.port)


def test_start_reports_early_exit_with_log_tail(tmp_path: Path) -> None:
    proc = localstack.mosquitto(tmp_path / "bad")
    (proc.data_dir / "mosquitto.conf").write_text("this_is_not_an_option 1\n")
    started = time.monotonic()
    with pytest.raises(LocalStackError, match="exited with code") as info:
        proc.start(timeout_s=10)
    assert time.monotonic() - started < 5
    assert "this_is_not_an_option" in str(info.value)
    assert not proc.running


def test_start_timeout_kills_and_reports(tmp_path: Path) -> None:
    # a "server" that never answers on its port: start() must give up, kill it and say so
    proc = localstack.ManagedProcess(
        "influxdb", "127.0.0.1", localstack.free_port(), tmp_path / "slow", ["sleep", "30"]
    )
    try:
        with pytest.raises(LocalStackError, match="not ready"):
            proc.start(timeout_s=0.5)
        assert not proc.running
    finally:
        proc.stop()


def test_context_manager_stops_on_exit(tmp_path: Path) -> None:
    with localstack.mosquitto(tmp_path / "cm") as broker:
        assert _connects(broker.host, broker.port)
    assert not broker.running
