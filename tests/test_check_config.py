"""`check-config` reports what start-up would refuse or run broken with, every problem at once,
each as file: key: reason: unset secret variables, malformed API tokens, listen addresses that
cannot be used, a missing or unloadable CA bundle, a data folder that cannot be written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import certifi
import pytest

from gateway.checks import check_config
from gateway.cli import main
from gateway.config import ApiSection
from gateway.errors import ConfigError
from tests.conftest import REGISTRY, write_config

NOT_LOCAL = "203.0.113.7"  # TEST-NET-3: never an address of this machine


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHK_MQTT_PW", "CHK_INFLUX_PW", "CHK_INFLUX_TOKEN", "CHK_TOKENS"):
        monkeypatch.delenv(name, raising=False)


def config(tmp_path: Path, registry: str = REGISTRY, **sections: dict[str, Any]) -> Path:
    base: dict[str, dict[str, Any]] = {"api": {"tokens_env": "CHK_TOKENS"}}
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return write_config(tmp_path / "gw", "http://127.0.0.1:8086", "db", registry, **base)


def problems(path: Path) -> list[str]:
    return check_config(path).problems


def test_a_sound_config_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHK_TOKENS", "one:viewer,two:admin")
    monkeypatch.setenv("CHK_MQTT_PW", "pw")
    path = config(
        tmp_path,
        mqtt={"enabled": True, "password_env": "CHK_MQTT_PW", "tls": True},
        metrics={"enabled": True, "listen": "127.0.0.1:0"},
    )
    report = check_config(path)
    assert (report.problems, report.warnings) == ([], [])
    assert report.loaded is not None


def test_every_problem_at_once_with_file_key_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHK_TOKENS", "fine:viewer,s3cr3t-one:root,s3cr3t-two")
    (tmp_path / "afile").write_text("not a folder")
    path = config(
        tmp_path,
        gateway={"data_dir": str(tmp_path / "afile" / "data")},
        hj212={"listen": f"{NOT_LOCAL}:9212"},
        mqtt={
            "enabled": True,
            "password_env": "CHK_MQTT_PW",
            "tls": True,
            "ca_file": str(tmp_path / "missing-ca.pem"),
        },
        influx={"password_env": "CHK_INFLUX_PW"},
        api={"listen": "127.0.0.1:9399"},
        metrics={"enabled": True, "listen": "127.0.0.1:9399"},
    )
    expected = [
        f"{path}: mqtt.password_env: environment variable CHK_MQTT_PW is not set",
        f"{path}: mqtt.ca_file: {tmp_path / 'missing-ca.pem'} does not exist",
        f"{path}: influx.password_env: environment variable CHK_INFLUX_PW is not set",
        f"{path}: api.tokens_env: CHK_TOKENS: entry 2: expected token:viewer or token:admin",
        f"{path}: api.tokens_env: CHK_TOKENS: entry 3: expected token:viewer or token:admin",
        f"{path}: hj212.listen: cannot listen on {NOT_LOCAL}:9212: {NOT_LOCAL} is not an "
        "address of this machine",
        f"{path}: metrics.listen: port 9399 is also api.listen's",
        f"{path}: gateway.data_dir: {tmp_path / 'afile' / 'data'} cannot be created: "
        f"{tmp_path / 'afile'} is not a folder",
    ]
    found = problems(path)
    for line in expected:
        assert any(p.startswith(line) for p in found), (line, found)
    assert len(found) == len(expected), found

    with pytest.raises(SystemExit) as exit_info:
        main(["check-config", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert all(line in err for line in expected)
    assert "s3cr3t" not in err  # a malformed entry is named by its position, never its text


def test_unset_secret_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHK_MQTT_PW", "  ")
    path = config(
        tmp_path,
        mqtt={"enabled": True, "password_env": "CHK_MQTT_PW"},
        influx={"version": 2, "org": "o", "token_env": "CHK_INFLUX_TOKEN"},
    )
    assert problems(path) == [
        # load_config reports the token too: once
        f"{path}: influx.token_env: environment variable CHK_INFLUX_TOKEN is not set",
        f"{path}: mqtt.password_env: environment variable CHK_MQTT_PW is empty",
    ]


def test_secrets_of_unused_parts_are_not_required(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        mqtt={"enabled": False, "password_env": "CHK_MQTT_PW"},
        influx={"version": 2, "org": "o", "token_env": "CHK_INFLUX_TOKEN"},
    )
    assert not any("CHK_MQTT_PW" in p for p in problems(path))
    path = config(tmp_path, influx={"version": 1, "token_env": "CHK_INFLUX_TOKEN"})
    assert problems(path) == []


def test_unset_api_tokens_are_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path)
    report = check_config(path)
    assert report.problems == []
    assert report.warnings == [
        f"{path}: api.tokens_env: environment variable CHK_TOKENS is not set: "
        "the API refuses every /api/v1 request (401)"
    ]
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out and "warning:" in out.err
    assert check_config(config(tmp_path, rules={"enabled": False})).warnings == []  # no API


def test_malformed_tokens_refuse_start_up_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHK_TOKENS", "a:admin, b:Admin ,:viewer,c:viewer")
    with pytest.raises(ConfigError) as info:
        ApiSection(tokens_env="CHK_TOKENS").tokens()
    assert info.value.problems == [
        "CHK_TOKENS: entry 2: expected token:viewer or token:admin",
        "CHK_TOKENS: entry 3: expected token:viewer or token:admin",
    ]
    monkeypatch.setenv("CHK_TOKENS", "a:admin, b:viewer ,")
    assert ApiSection(tokens_env="CHK_TOKENS").tokens() == {"a": "admin", "b": "viewer"}


def test_bad_listen_addresses(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        api={"listen": "nowhere"},
        metrics={"enabled": True, "listen": "127.0.0.1:70000"},
    )
    found = problems(path)
    assert f"{path}: api.listen: listen must be host:port" in found
    assert f"{path}: metrics.listen: listen must be host:port" in found
    path = config(
        tmp_path,
        hj212={"listen": "0.0.0.0:9212"},
        api={"listen": "localhost:0"},
        metrics={"enabled": True, "listen": "127.0.0.1:9212"},
    )
    assert problems(path) == [f"{path}: metrics.listen: port 9212 is also hj212.listen's"]


def test_ca_file_that_is_not_a_bundle(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    mqtt = {"enabled": True, "tls": True, "ca_file": str(bogus)}
    found = problems(config(tmp_path, mqtt=mqtt))
    assert len(found) == 1 and "mqtt.ca_file: " in found[0]
    assert "cannot be loaded as a CA bundle" in found[0]
    assert problems(config(tmp_path, mqtt={**mqtt, "ca_file": certifi.where()})) == []
    unused = check_config(config(tmp_path, mqtt={**mqtt, "tls": False}))
    assert unused.problems == [] and "tls is off" in unused.warnings[0]


def test_data_folder_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    path = config(tmp_path, gateway={"data_dir": str(tmp_path / "plain-file")})
    assert problems(path) == [
        f"{path}: gateway.data_dir: {tmp_path / 'plain-file'} is not a folder"
    ]
    data = tmp_path / "data"
    (data / "spool").mkdir(parents=True)
    assert problems(config(tmp_path, gateway={"data_dir": str(data)})) == []
    assert problems(config(tmp_path, gateway={"data_dir": str(data / "new" / "deeper")})) == []


def test_other_sections_are_checked_when_one_is_broken(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        registry=REGISTRY + '\n[[enterprises]]\nid = "E1"\n',
        spool={"max_bytes": "lots"},
        mqtt={"enabled": True, "password_env": "CHK_MQTT_PW"},
    )
    found = problems(path)
    assert any("spool.max_bytes" in p for p in found)
    assert any("appears twice" in p for p in found)
    assert f"{path}: mqtt.password_env: environment variable CHK_MQTT_PW is not set" in found
