"""Property-based run of the whole API from its own OpenAPI document (schemathesis), with an
admin token: no 5xx, and every response has a documented status code, content type and schema.

Uses schemathesis' Hypothesis strategies directly: its pytest fixture loader
(`schemathesis.pytest.from_fixture`) does not work with pytest 9 (it sets `node._nodeid`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import ADMIN, REGISTRY, T0, TOKENS, make_anomaly

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25


def api_schema(tmp_path: Path) -> Any:
    store = AnomalyStore(tmp_path / "anomalies.db")
    for i, enterprise in enumerate(["E1", "E2", "E1"]):
        store.record(make_anomaly(enterprise=enterprise, subject=f"mn:{i}"))
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    app = create_app(
        store=store,
        regime=Regime(tmp_path / "regime.db"),
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        tokens=TOKENS,
        clock=lambda: T0,
        stream_heartbeat_s=0.01,
        stream_max_s=0.05,  # the stream is an operation too: let every call end
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(tmp_path: Path, mode: GenerationMode) -> None:
    schema = api_schema(tmp_path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            case.call_and_validate(headers=ADMIN, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            # no parameters and no body (/healthz): nothing can be made invalid
        except Exception as exc:
            exc.add_note(f"operation: {operation.label} ({mode.value})")
            raise
