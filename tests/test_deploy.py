"""The deployment kit: the production config validates, the systemd unit verifies, the
Mosquitto config runs a real broker that enforces its password, and every dashboard query is
valid InfluxQL against a real InfluxDB."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devkit import localstack
from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def test_production_config_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(DEPLOY / "gateway.production.toml", tmp_path / "gateway.toml")
    shutil.copy(ROOT / "config" / "registry.toml", tmp_path / "registry.toml")
    monkeypatch.setenv("INFLUX_TOKEN", "t")
    loaded = load_config(tmp_path / "gateway.toml")
    assert loaded.config.influx.version == 2 and loaded.config.mqtt.tls
    monkeypatch.delenv("INFLUX_TOKEN")
    with pytest.raises(Exception, match="INFLUX_TOKEN is not set"):
        load_config(tmp_path / "gateway.toml")


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    executable = Path(sys.executable).with_name("pollution-gateway")
    unit = (DEPLOY / "pollution-gateway.service").read_text()
    unit = unit.replace("/opt/pollution-gateway/.venv/bin/pollution-gateway", str(executable))
    (tmp_path / "pollution-gateway.service").write_text(unit)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "pollution-gateway.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "pollution-gateway.service" in line
    ]
    assert problems == [], problems


def test_mosquitto_config_runs_and_requires_a_password(tmp_path: Path) -> None:
    port = localstack.free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = re.sub(r"^(certfile|keyfile|cafile) .*$", "", conf, flags=re.MULTILINE)
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/etc/mosquitto/passwd", str(tmp_path / "passwd"))
    conf = conf.replace("/etc/mosquitto/acl", str(DEPLOY / "mosquitto.acl"))
    conf = conf.replace("/var/lib/mosquitto/", str(tmp_path))
    conf += "\nuser root\nlog_dest stdout\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    subprocess.run(
        [
            shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd",
            "-b",
            "-c",
            str(tmp_path / "passwd"),
            "pollution-gateway",
            "s3cret",
        ],
        check=True,
    )
    broker = subprocess.Popen(
        [localstack.find_binary("mosquitto"), "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert broker.poll() is None, broker.stdout.read() if broker.stdout else ""
                time.sleep(0.05)

        def connect(password: str | None) -> int:
            client = paho.Client(CallbackAPIVersion.VERSION2)
            if password is not None:
                client.username_pw_set("pollution-gateway", password)
            client.connect("127.0.0.1", port)
            result: list[int] = []
            client.on_connect = lambda c, u, f, rc, p: result.append(int(rc.value))
            for _ in range(50):
                client.loop(0.1)
                if result:
                    break
            client.disconnect()
            return result[0] if result else -1

        assert connect("s3cret") == 0
        assert connect("wrong") != 0
        assert connect(None) != 0
    finally:
        broker.terminate()
        broker.wait(10)


def test_every_dashboard_query_is_valid_influxql(influx: localstack.ManagedProcess) -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    localstack.create_database(influx.url, "dash")
    queries = [t["query"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(queries) >= 8
    for query in queries:
        concrete = (
            query.replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "1m")
            .replace("/^$enterprise$/", "/.*/")
        )
        result = localstack.query(influx.url, "dash", concrete)
        assert "error" not in result["results"][0], (query, result)
