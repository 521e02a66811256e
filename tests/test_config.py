"""The shipped configuration is valid; a broken one is reported with file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_and_registry_load(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load_config(ROOT / "config" / "gateway.toml")
    assert loaded.registry.enterprise("E0001") is not None
    assert loaded.registry.data.control_periods
    assert main(["check-config", str(ROOT / "config" / "gateway.toml")]) == 0
    assert "OK" in capsys.readouterr().out


def test_every_problem_is_reported_with_file_key_and_reason(tmp_path: Path) -> None:
    (tmp_path / "registry.toml").write_text(
        '[[enterprises]]\nid = "E1"\n  [[enterprises.outlets]]\n  id = "O1"\n  mn = "M1"\n'
        '  sm4_key = "short"\n'
    )
    config = tmp_path / "gateway.toml"
    config.write_text('[hj212]\nlisten = "nowhere"\n[influx]\nversion = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(config)
    problems = "\n".join(info.value.problems)
    assert f"{config}: hj212.listen: listen must be host:port" in problems
    assert f"{config}: influx: InfluxDB 2.x/3.x needs org" in problems
    assert "registry.toml: enterprises[0].outlets[0].sm4_key:" in problems
