"""`[[forward]]` validation: every problem reported with file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.conftest import write_config
from tests.frames import MN_2025, MN_WATER

from .kit import with_targets

GOOD: dict[str, Any] = {"name": "province", "address": "10.0.0.1:9212"}


def problems(tmp_path: Path, targets: list[dict[str, Any]], **sections: Any) -> str:
    config = write_config(tmp_path, "http://127.0.0.1:1", "db", **sections)
    with pytest.raises(ConfigError) as info:
        load_config(with_targets(config, targets))
    return "\n".join(info.value.problems)


def test_a_good_target_loads_with_its_defaults(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1", "db")
    target = {
        **GOOD,
        "version": "2025",
        "sm4_key": "1234567890abcdef",
        "sm4_keys": {MN_2025: "00112233445566778899aabbccddeeff"},
        "passwords": {MN_WATER: "up1"},
        "enterprises": ["E1"],
    }
    loaded = load_config(with_targets(config, [target]))
    (t,) = loaded.config.forward
    assert t.cns == ["2011", "2051", "2061", "2031", "2021", "2041"]
    assert (t.ack, t.window, t.heartbeat_s, t.start) == (True, 1, 0.0, "end")
    assert t.key_for(MN_2025) == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert t.key_for(MN_WATER) == b"1234567890abcdef"
    assert (t.password_for(MN_WATER), t.password_for(MN_2025)) == ("up1", None)


def test_forward_needs_the_archive(tmp_path: Path) -> None:
    found = problems(tmp_path, [GOOD], archive={"enabled": False})
    assert "gateway.toml: forward: forward targets need [archive] enabled = true" in found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"address": "nowhere"}, "forward[0].address: address must be host:port"),
        ({"address": "h:70000"}, "forward[0].address: address must be host:port"),
        ({"name": "a/b"}, "forward[0].name: name is 1-64 letters"),
        ({"version": "2005"}, "forward[0].version: Input should be '2017' or '2025'"),
        ({"sm4_key": "1234567890abcdef"}, "forward[0]: sm4_key / sm4_keys are for version 2025"),
        (
            {"version": "2025", "sm4_key": "short"},
            "forward[0].sm4_key: an SM4 key is 16 ASCII characters or 32 hex digits",
        ),
        (
            {"version": "2025", "sm4_keys": {MN_2025: "short"}},
            f"forward[0].sm4_keys: {MN_2025}: an SM4 key is 16 ASCII",
        ),
        ({"cns": ["2051", "9014"]}, "forward[0].cns: not upload CNs (2xxx / 3xxx): 9014"),
        ({"cns": []}, "forward[0].cns: at least one CN"),
        ({"mns": ["bad mn"]}, "forward[0].mns: 'bad mn' is not an MN"),
        ({"password": "a;b"}, "forward[0].password: a password is at most 64 characters"),
        ({"passwords": {MN_WATER: "x y"}}, f"forward[0].passwords: {MN_WATER}: a password"),
        ({"window": 0}, "forward[0].window: Input should be greater than or equal to 1"),
        ({"ack_timeout_s": 0}, "forward[0].ack_timeout_s: Input should be greater than 0"),
        ({"rate_per_s": -1}, "forward[0].rate_per_s: Input should be greater than 0"),
        ({"heartbeat_s": -1}, "forward[0].heartbeat_s: Input should be greater than or equal"),
        (
            {"backoff_min_s": 5, "backoff_max_s": 1},
            "forward[0]: backoff_min_s must not exceed backoff_max_s",
        ),
        ({"start": "yesterday"}, "forward[0].start: Input should be 'end' or 'oldest'"),
        ({"ack": "sometimes"}, "forward[0].ack: Input should be a valid boolean"),
        ({"colour": "red"}, "forward[0].colour: Extra inputs are not permitted"),
        ({"enterprises": ["E9"]}, "forward[0].enterprises: 'E9' is not in the registry"),
        ({"mns": ["NOSUCHMN"]}, "forward[0]: MN 'NOSUCHMN' is not a registered HJ 212 device"),
    ],
)
def test_each_key_is_checked(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    assert f"gateway.toml: {expected}" in problems(tmp_path, [{**GOOD, **change}])


def test_a_missing_address_and_a_name_twice(tmp_path: Path) -> None:
    found = problems(tmp_path, [GOOD, {"name": "province", "address": "10.0.0.2:9212"}])
    assert "gateway.toml: forward[1].name: 'province' is the name of another target" in found
    assert "gateway.toml: forward[0].address: Field required" in problems(tmp_path, [{"name": "x"}])
