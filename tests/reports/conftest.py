"""The simulated month, built once for the month and page tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devkit import localstack
from tests.reports.month import Month, build


@pytest.fixture(scope="module")
def month(
    tmp_path_factory: pytest.TempPathFactory, influx: localstack.ManagedProcess
) -> Iterator[Month]:
    built = build(tmp_path_factory.mktemp("month"), influx.url, "m_" + uuid.uuid4().hex[:12])
    yield built
    built.close()
