"""What the benchmark's runs share: the gateway configuration they run, the frames they send,
and counting points back from InfluxDB."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from adapters.hj212.builder import build_frame, build_segment
from devkit import localstack

POLLUTANTS = ("a21026", "a21002", "a34013", "a19001", "a00000", "a01012")


def bench_mn(i: int) -> str:
    return f"BENCH{i:019d}"


def bench_frame(mn: str, i: int, base: datetime) -> bytes:
    t = base + timedelta(minutes=i)
    groups = [
        f"{p}-Min={i % 97}.5,{p}-Avg={i % 89}.25,{p}-Max={i % 83}.75,{p}-Flag=N" for p in POLLUTANTS
    ]
    cp = ";".join([f"DataTime={t:%Y%m%d%H%M%S}", *groups])
    qn = f"{t:%Y%m%d%H%M%S}{i % 1000:03d}"
    head: list[tuple[str, str | int]] = [
        ("QN", qn),
        ("ST", "31"),
        ("CN", "2051"),
        ("PW", "123456"),
        ("MN", mn),
        ("Flag", 5),
    ]
    return build_frame(build_segment(head, cp))


def write_config(
    work: Path,
    port: int,
    influx_url: str,
    devices: int,
    metrics_port: int,
    mqtt_port: int | None = None,
) -> Path:
    outlets = "".join(
        f'\n  [[enterprises.outlets]]\n  id = "O{i}"\n  mn = "{bench_mn(i)}"'
        '\n  password = "123456"\n'
        for i in range(devices)
    )
    (work / "registry.toml").write_text(f'[[enterprises]]\nid = "BENCH"\n{outlets}')
    config = work / "gateway.toml"
    config.write_text(
        f"""[gateway]
data_dir = "gw"
log_format = "json"
log_level = "warning"
[hj212]
listen = "127.0.0.1:{port}"
max_connections_per_address = 60000
max_inflight_per_connection = 512
[influx]
url = "{influx_url}"
database = "bench"
batch_lines = 5000
flush_interval_s = 0.2
retry_max_s = 1.0
[spool]
max_bytes = "8GiB"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[api]
listen = "127.0.0.1:{localstack.free_port()}"
[mqtt]
enabled = {"true" if mqtt_port else "false"}
port = {mqtt_port or 1883}
client_id = "bench-gateway"
topic_prefix = "bench"
"""
    )
    return config


def count_measurement(url: str, measurement: str, field: str) -> int:
    rows = localstack.query(url, "bench", f"SELECT count({field}) FROM {measurement}")
    series = rows["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0
