"""The control and audit operations from their OpenAPI document (schemathesis) on an app that
keeps an audit log: no 5xx, every response documented, and every entry the writes made reads
back through `/api/v1/audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.audit import AuditLog
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import ADMIN, ADMIN_NAME, REGISTRY, T0, TOKENS
from tests.api.test_openapi import CHECKS

PREFIXES = ("/api/v1/alerts", "/api/v1/orders", "/api/v1/audit", "/api/v1/registry")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_control_and_audit_conform_with_an_audit_log(tmp_path: Path, mode: GenerationMode) -> None:
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    audit = AuditLog(tmp_path / "audit.db")
    app = create_app(
        store=AnomalyStore(tmp_path / "anomalies.db"),
        regime=Regime(tmp_path / "regime.db"),
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        tokens=TOKENS,
        clock=lambda: T0,
        reload_registry=list,
        audit=audit,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [
        op for op in (r.ok() for r in schema.get_all_operations()) if op.path.startswith(PREFIXES)
    ]
    assert any(op.path == "/api/v1/audit" for op in operations)
    for operation in operations:

        @settings(
            max_examples=25,
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
    entries, total = audit.query(limit=1000)
    if mode is GenerationMode.POSITIVE:
        assert total > 0, "no write went through"
    assert total == len(audit) and len(entries) == min(total, 1000)
    assert all(e.actor == ADMIN_NAME and e.actor_role == "admin" for e in entries)
