"""A city gateway forwarding to a provincial one: configs, registries, waiting helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from devkit import localstack
from gateway.archive.files import day_files
from gateway.archive.record import decode
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.conftest import REGISTRY, influx_rows, write_config
from tests.frames import MN_2025, MN_WATER, qn_for, upload

UP_PASSWORD = "up-pass1"
UP_KEY = "1234567890abcdef"  # the provincial platform's SM4 key for MN_2025
BASE = datetime(2026, 4, 1, 0, 0)

PROVINCIAL_REGISTRY = f"""
[[enterprises]]
id = "E1"
name = "Test plant"

  [[enterprises.outlets]]
  id = "DA001"
  mn = "{MN_2025}"
  password = "{UP_PASSWORD}"
  sm4_key = "{UP_KEY}"
  version = "2025"

  [[enterprises.outlets]]
  id = "DW001"
  mn = "{MN_WATER}"
  password = "{UP_PASSWORD}"
"""


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    return json.dumps(value)


def with_targets(config: Path, targets: list[dict[str, Any]]) -> Path:
    """Append `[[forward]]` tables to a config file."""
    lines = []
    for target in targets:
        lines.append("[[forward]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in target.items()]
    with config.open("a") as out:
        out.write("\n".join(lines) + "\n")
    return config


def city_config(
    directory: Path, influx_url: str, database: str, targets: list[dict[str, Any]], **sections: Any
) -> Path:
    return with_targets(
        write_config(directory, influx_url, database, REGISTRY, **sections), targets
    )


def provincial_config(directory: Path, influx_url: str, database: str, port: int) -> Path:
    return write_config(
        directory,
        influx_url,
        database,
        PROVINCIAL_REGISTRY,
        hj212={"listen": f"127.0.0.1:{port}", "idle_timeout_s": 60},
        rules={"enabled": False},
    )


async def start_gateway(config: Path) -> Gateway:
    gw = Gateway(load_config(config))
    await gw.start()
    return gw


def minute_upload(i: int, mn: str = MN_WATER, key: bytes | None = None) -> bytes:
    """Upload i: its own minute, one value that encodes i."""
    return upload(
        mn=mn,
        cn="2051",
        qn=qn_for(i),
        data_time=BASE + timedelta(minutes=i),
        values={"w01018": float(i)},
        key=key,
    )


async def values_upstream(url: str, db: str, mn: str = MN_WATER) -> list[float]:
    rows = await asyncio.to_thread(
        influx_rows, url, db, f"SELECT avg FROM emission WHERE mn = '{mn}' AND interval = 'minute'"
    )
    return [float(r["avg"]) for r in rows if r.get("avg") is not None]


async def wait_values(url: str, db: str, count: int, timeout_s: float = 60) -> list[float]:
    """The provincial `avg` values once at least `count` are there (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = await values_upstream(url, db)
        except localstack.LocalStackError:
            got = []
        if len(got) >= count or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.25)


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def archived_frames(directory: Path) -> list[bytes]:
    """The accepted frames of an archive, in the order they came."""
    out = []
    for _, path in day_files(directory):
        for line in path.read_bytes().splitlines(keepends=True):
            rec = decode(line).record
            if rec.verdict == "accepted":
                out.append(rec.raw)
    return out
