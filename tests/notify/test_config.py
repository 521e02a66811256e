"""The `[notify]` section: everything validated at load, references checked against the
registry and the environment, problems named by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.notify.config import NotifySection
from tests.conftest import write_config
from tests.notify.conftest import REGISTRY


def section(*channels: dict[str, Any], **values: Any) -> NotifySection:
    return NotifySection.model_validate({**values, "channels": list(channels)})


HOOK = {"name": "bureau", "kind": "webhook", "url": "https://hooks.example/notify"}


def test_defaults_send_nothing() -> None:
    notify = NotifySection()
    assert notify.enabled and notify.channels == [] and notify.max_pending == 10_000


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        ({**HOOK, "kind": "email"}, "Input should be 'webhook', 'wecom' or 'dingtalk'"),
        ({**HOOK, "url": "ftp://x/y"}, "url must be an http:// or https:// address"),
        ({**HOOK, "types": ["over_limit", "smoke"]}, "unknown anomaly types: smoke"),
        ({**HOOK, "severities": ["critical"]}, "Input should be 'warning' or 'alarm'"),
        ({**HOOK, "events": ["case_closed"]}, "Input should be 'anomaly_opened'"),
        ({**HOOK, "level": 2, "events": ["anomaly_opened"]}, "case_unsigned goes to level 2"),
        ({**HOOK, "events": ["case_unsigned"]}, "of level 1 cannot take case_unsigned"),
        ({**HOOK, "level": 3}, "Input should be 1 or 2"),
        ({**HOOK, "kind": "wecom", "secret_env": "X"}, "a WeCom robot takes no secret"),
        ({**HOOK, "name": "a b"}, "String should match pattern"),
        ({**HOOK, "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_a_channel_is_refused(channel: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        section(channel)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="channel names appear twice: bureau"):
        section(HOOK, {**HOOK, "kind": "wecom"})


def test_load_checks_regions_enterprises_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_TEST_SECRET", raising=False)
    path = write_config(tmp_path, "http://127.0.0.1:8086", "db", REGISTRY)
    channels = (
        "[[notify.channels]]\n"
        'name = "city"\nkind = "dingtalk"\nurl = "https://oapi.dingtalk.com/robot/send?x=1"\n'
        'secret_env = "NOTIFY_TEST_SECRET"\nregions = ["320500", "999999"]\n'
        'enterprises = ["E1", "E9"]\n'
    )
    path.write_text(path.read_text() + "\n[notify]\nmax_pending = 50\n" + channels)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: notify.channels[0].regions: region '999999' is not in the registry",
        f"{path}: notify.channels[0].enterprises: enterprise 'E9' is not in the registry",
        f"{path}: notify.channels[0].secret_env: environment variable NOTIFY_TEST_SECRET is"
        " not set",
    ]
    path.write_text(path.read_text().replace(', "999999"', "").replace(', "E9"', ""))
    monkeypatch.setenv("NOTIFY_TEST_SECRET", "SECabc")
    loaded = load_config(path)
    (city,) = loaded.config.notify.channels
    assert (city.kind, city.regions, loaded.config.notify.max_pending) == (
        "dingtalk",
        ["320500"],
        50,
    )


def test_bad_keys_are_named_with_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:8086", "db", REGISTRY)
    path.write_text(path.read_text() + '\n[notify]\nmax_pending = 0\nlink_base = "page"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: notify.max_pending: Input should be greater than or equal to 1" in (
        caught.value.problems
    )
    assert f"{path}: notify.link_base: link_base must be an http:// or https:// address" in (
        caught.value.problems
    )
