"""The cluster bench's pure parts: client connections spread over loopback source addresses
and client processes, a node's processes told apart by their command lines, open-file limits
read from /proc, enterprises covering every rule partition, and the probes' frames."""

from __future__ import annotations

import math
import os
import resource
from collections import Counter
from pathlib import Path

import pytest

from adapters.hj212.framer import Framer
from devkit.bench_kill import covering, probe_frame, probe_key, probe_mn
from devkit.bench_loggers import qn_of
from devkit.bench_node import (
    parse_open_files,
    percentiles,
    process_name,
    registry_toml,
    shares,
    source_address,
)
from gateway.cluster.partitions import partition_of
from gateway.registry import Registry


def test_source_addresses_hold_per_address_connections_each() -> None:
    spread = Counter(source_address(i, 10_000) for i in range(50_000))
    assert spread == {f"127.0.0.{a}": 10_000 for a in range(2, 7)}
    assert source_address(254 * 1000, 1000, first=1) == "127.0.0.255"
    assert source_address(255 * 1000, 1000, first=1) == "127.0.1.0"  # still loopback (/8)
    with pytest.raises(ValueError):
        source_address((1 << 24) * 10, 10)


def test_shares_cover_the_total_in_consecutive_slices() -> None:
    assert shares(50_000, 5) == [(i * 10_000, 10_000) for i in range(5)]
    parts = shares(10, 3)
    assert parts == [(0, 4), (4, 3), (7, 3)]
    assert sum(count for _, count in shares(7, 7)) == 7


def test_process_name_of_a_node_command_line() -> None:
    argv = ["python", "-m", "gateway.cli", "run", "--config", "x.toml", "--process"]
    assert process_name([*argv, "ingest:2:4"]) == "ingest-2"
    assert process_name([*argv, "rules:1:2:1"]) == "rules-1"
    assert process_name([*argv, "bogus"]) is None
    assert process_name(argv[:-1]) is None  # the launcher itself


def test_open_files_from_proc_limits() -> None:
    text = (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max processes             94000                94000                processes \n"
        "Max open files            1024                 20000                files     \n"
    )
    assert parse_open_files(text) == (1024, 20000)
    with open(f"/proc/{os.getpid()}/limits") as f:
        assert parse_open_files(f.read()) == resource.getrlimit(resource.RLIMIT_NOFILE)
    with pytest.raises(ValueError):
        parse_open_files("Max processes 1 1 processes\n")


def test_percentiles_nearest_rank() -> None:
    got = percentiles("x", [i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert got["x_samples"] == 100
    assert math.isclose(got["x_p50_ms"], 50) and math.isclose(got["x_p99_ms"], 99)
    assert math.isclose(got["x_max_ms"], 100)
    assert math.isnan(percentiles("y", [])["y_p99_ms"])


def test_enterprises_cover_every_partition_in_order() -> None:
    ents = covering(16)
    assert [partition_of(e, 16) for e in ents] == list(range(16))
    assert len(set(ents)) == 16


def test_probe_frames_alternate_over_and_under_their_limit() -> None:
    framer = Framer()
    frames = [framer.feed(probe_frame(probe_mn(3), i)) for i in range(3)]
    assert [len(f) for f in frames] == [1, 1, 1]
    over, under, again = (f[0] for f in frames)
    assert b"w01018-Avg=80.0" in over and b"w01018-Avg=20.0" in under
    assert qn_of(probe_frame(probe_mn(3), 0)) != qn_of(probe_frame(probe_mn(3), 2))
    kind, ent, start = probe_key("E1", 2)
    assert (kind, ent) == ("over_limit", "E1")
    assert start.utcoffset() is not None and start.hour == 2
    assert b"CN=2061" in again


def test_registry_with_a_probe_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(
        registry_toml(
            {"E1": ["M1", probe_mn(0)]},
            {probe_mn(0): '{ w01018 = { limit = 50, unit = "mg/L" } }'},
        )
    )
    registry = Registry.load(path)
    device = registry.device(probe_mn(0))
    assert device is not None and device.enterprise == "E1"
    assert registry.device("M1") is not None
