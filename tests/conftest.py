"""Session fixtures: a real InfluxDB and a real Mosquitto on free ports, and gateways in-process.

A missing server binary is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit import localstack
from gateway.config import LoadedConfig, load_config
from gateway.supervisor import Gateway

VECTORS = Path(__file__).resolve().parent / "vectors" / "hj212"  # published frames
MN_2025 = "010000A8900016F000169DC0"
MN_WATER = "23040281003022"
MN_POWER = "0100000000000000000000A1"


def vector_frames() -> dict[str, str]:
    """id -> frame text of every public vector (CR LF not included)."""
    out = {}
    for line in (VECTORS / "frames.jsonl").read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            out[str(item["id"])] = item["frame"]
    return out


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.ManagedProcess]:
    proc = localstack.influxdb(tmp_path_factory.mktemp("influxdb"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.ManagedProcess]:
    proc = localstack.mosquitto(tmp_path_factory.mktemp("mosquitto"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.PostgresServer]:
    """A PostgreSQL server of the session (Debian's `postgresql`; as root, run as `postgres`)."""
    server = localstack.postgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    try:
        yield server
    finally:
        localstack.remove_postgres(server)


@pytest.fixture
def pg_dsn(postgres: localstack.PostgresServer) -> str:
    """The DSN of a new, empty database of this test."""
    return postgres.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def own_influx(tmp_path: Path) -> Iterator[localstack.ManagedProcess]:
    """An InfluxDB of this test alone (for tests that stop or kill it)."""
    proc = localstack.influxdb(tmp_path / "own-influxdb")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


REGISTRY = f"""
[[enterprises]]
id = "E1"
name = "Test plant"

  [[enterprises.outlets]]
  id = "DA001"
  mn = "{MN_2025}"
  password = "123456"
  sm4_key = "0000000000000000"

  [[enterprises.outlets]]
  id = "DW001"
  mn = "{MN_WATER}"
  password = "123456"
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50, unit = "mg/L" }}

  [[enterprises.outlets]]
  id = "OPEN1"
  mn = "LD130133000015"
  open = true

  [[enterprises.outlets]]
  id = "MODBUS1"
  mn = "C201801010001"
  password = "123456"

  [[enterprises.meters]]
  id = "PM1"
  role = "production"
  line = "L1"
  ct_ratio = 2.0

  [[enterprises.outlets]]
  id = "PWR1"
  mn = "{MN_POWER}"
  password = "123456"
  kind = "power"
  [enterprises.outlets.power_codes]
  d20105 = {{ meter = "PM1", quantity = "ua" }}
  d20405 = {{ meter = "PM1", quantity = "p_kw" }}
"""


def write_config(
    directory: Path,
    influx_url: str,
    database: str,
    registry: str = REGISTRY,
    **sections: dict[str, Any],
) -> Path:
    """A gateway config + registry in `directory`; `sections` override keys per section."""
    base: dict[str, dict[str, Any]] = {
        "gateway": {
            "data_dir": "data",
            "registry": "registry.toml",
            "log_format": "console",
            "shutdown_timeout_s": 5,
        },
        "hj212": {"listen": "127.0.0.1:0", "idle_timeout_s": 60},
        "influx": {
            "url": influx_url,
            "database": database,
            "flush_interval_s": 0.1,
            "retry_max_s": 1.0,
        },
        "metrics": {"enabled": False},
        "api": {"listen": "127.0.0.1:0", "tokens_env": "TEST_GATEWAY_API_TOKENS"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "registry.toml").write_text(registry)
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def database() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
def gateway_config(
    tmp_path: Path, influx: localstack.ManagedProcess, database: str
) -> Callable[..., LoadedConfig]:
    def make(influx_url: str | None = None, **sections: dict[str, Any]) -> LoadedConfig:
        path = write_config(tmp_path / "gw", influx_url or influx.url, database, **sections)
        return load_config(path)

    return make


@pytest.fixture
async def gateway(gateway_config: Callable[..., LoadedConfig]) -> AsyncIterator[Gateway]:
    gw = Gateway(gateway_config())
    await gw.start()
    try:
        yield gw
    finally:
        await gw.shutdown()


def influx_rows(url: str, database: str, query: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL query as dicts (column -> value)."""
    result = localstack.query(url, database, query)
    rows: list[dict[str, Any]] = []
    for res in result.get("results", []):
        for series in res.get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
    return rows


async def wait_rows(
    url: str, db: str, query: str, count: int, timeout_s: float = 15.0, needs: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`count` rows with every column in `needs` set: InfluxDB 1.x makes a point's fields
    visible one by one, so a query may see a row whose other fields are not there yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await asyncio.to_thread(influx_rows, url, db, query)
        complete = all(r.get(name) is not None for r in rows for name in needs)
        if (len(rows) >= count and complete) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Tests run on uvloop, as the daemon does."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
