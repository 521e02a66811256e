"""`[cluster] postgres_dsn`: empty by default (the SQLite files), a PostgreSQL URL when set."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.conftest import write_config


def test_empty_by_default_and_a_url_is_kept(tmp_path: Path) -> None:
    plain = load_config(write_config(tmp_path / "a", "http://127.0.0.1:1", "db"))
    assert plain.config.cluster.postgres_dsn == ""
    dsn = "postgresql://gateway:secret@10.0.0.5:5432/gateway"
    set_ = load_config(
        write_config(tmp_path / "b", "http://127.0.0.1:1", "db", cluster={"postgres_dsn": dsn})
    )
    assert set_.config.cluster.postgres_dsn == dsn
    assert not set_.config.cluster.enabled  # the shared stores need no JetStream log


@pytest.mark.parametrize("value", ["host=10.0.0.5 dbname=gateway", "mysql://x/y", "postgresql://"])
def test_anything_but_a_postgresql_url_is_named(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1", "db", cluster={"postgres_dsn": value})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "postgres_dsn" in str(info.value) and "PostgreSQL URL" in str(info.value)
