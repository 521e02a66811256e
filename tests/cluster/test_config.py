"""The `[cluster]` section: off by default, and a precise error for each key set wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.cluster.config import ClusterSection, subject_matches
from gateway.config import load_config
from gateway.errors import ConfigError
from tests.conftest import write_config


def problems(tmp_path: Path, **cluster: Any) -> list[str]:
    path = write_config(tmp_path, "http://127.0.0.1:8086", "db", cluster=cluster)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_off_by_default_with_three_replicas_and_both_roles(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, "http://127.0.0.1:8086", "db"))
    section = loaded.config.cluster
    assert section.enabled is False and not section.ingest and not section.writer
    assert section.replicas == 3 and section.role == ["ingest", "writer"]


def test_sizes_take_units_and_roles_are_kept_once(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "http://127.0.0.1:8086",
        "db",
        cluster={"enabled": True, "max_bytes": "2GiB", "role": ["writer", "writer"]},
    )
    section = load_config(path).config.cluster
    assert section.max_bytes == 2 << 30
    assert section.role == ["writer"] and section.writer and not section.ingest


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("servers", [], "at least one NATS server"),
        ("servers", ["http://127.0.0.1:4222"], "nats://host:port"),
        ("stream", "points.all", "letters, digits"),
        ("consumer", "a b", "letters, digits"),
        ("subjects", [], "at least one subject"),
        ("subjects", ["a..b"], "is not a NATS subject"),
        ("subject", "other.points", "not among the stream's subjects"),
        ("subject", "pollution.points.*", "without wildcards"),
        ("replicas", 0, "greater than or equal to 1"),
        ("replicas", 7, "less than or equal to 5"),
        ("max_bytes", "lots", "a size is a number of bytes"),
        ("max_bytes", "1KiB", "max_message_bytes must not exceed max_bytes"),
        ("role", [], "a node runs ingest, writer, rules, or several"),
        ("role", ["api"], "'ingest', 'writer' or 'rules'"),
        ("max_message_bytes", "64MiB", "must not exceed max_pending_bytes"),
        ("max_pending_bytes", "lots", "a size is a number of bytes"),
        ("max_inflight", 0, "greater than or equal to 1"),
        ("ack_timeout_s", 0, "greater than 0"),
        ("publish_deadline_s", -1, "greater than 0"),
        ("fetch_batch", 0, "greater than or equal to 1"),
        ("ack_wait_s", 0, "greater than 0"),
        ("max_ack_pending", 0, "greater than or equal to 1"),
        ("poison_max_bytes", "x", "a size is a number of bytes"),
        ("shards", 4, "Extra inputs are not permitted"),
    ],
)
def test_each_key_set_wrong_is_named(tmp_path: Path, key: str, value: Any, says: str) -> None:
    found = problems(tmp_path, enabled=True, **{key: value})
    assert any("cluster" in p and says in p for p in found), found


def test_subject_patterns_match_as_nats_does() -> None:
    assert subject_matches("pollution.points.>", "pollution.points.ingest")
    assert subject_matches("pollution.*.ingest", "pollution.points.ingest")
    assert not subject_matches("pollution.points.>", "pollution.points")
    assert not subject_matches("pollution.*", "pollution.points.ingest")
    assert subject_matches("a.b", "a.b") and not subject_matches("a.b", "a.c")


def test_a_node_name_defaults_to_the_host_name() -> None:
    assert ClusterSection(node="gw-2").node_name == "gw-2"
    assert ClusterSection().node_name
