"""Every route of the API with each role: a reading route answers every account, a writing
route (and the audit log) only admins, none answers without a token. Walked from the app's own
OpenAPI document, so a new route is checked too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.anomalies.store import AnomalyStore
from gateway.audit import AuditLog
from tests.api.test_scope import accounts_file, auth, recorded, scoped_app  # noqa: F401 - fixtures  # noqa: F401 - fixtures

OPEN = {"/healthz", "/readyz", "/metrics", "/"}  # health, metrics and the page need no token
ADMIN_ONLY_READS = {"/api/v1/audit"}
SAMPLE = {"enterprise_id": "E1", "alert_id": "x", "order_id": "x"}


@pytest.fixture
async def api(
    scoped_app: Callable[..., FastAPI],  # noqa: F811
    tmp_path: Path,
    recorded: dict[str, Any],  # noqa: F811
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    audit = AuditLog(tmp_path / "audit.db")
    app = scoped_app(audit=audit, reload_registry=lambda: [])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        yield client, app
    audit.close()


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the OpenAPI document lists, but the open ones."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in sorted(paths.items())
        if path not in OPEN
        for method in sorted(operations)
    ]


def fill(path: str, anomaly_id: str) -> str:
    return path.format(**{**SAMPLE, "anomaly_id": anomaly_id})


async def test_no_route_answers_without_a_valid_token(
    api: tuple[httpx.AsyncClient, FastAPI], store: AnomalyStore
) -> None:
    client, app = api
    some = store.query(limit=1)[0][0].id
    checked = routes(app)
    assert len(checked) >= 20
    for method, path in checked:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            reply = await client.request(method, fill(path, some), headers=headers)
            assert reply.status_code == 401, (method, path, reply.status_code)


@pytest.mark.parametrize("who", ["plant", "city", "county", "admin"])
async def test_each_role_is_let_in_where_its_role_allows(
    api: tuple[httpx.AsyncClient, FastAPI], store: AnomalyStore, who: str
) -> None:
    client, app = api
    mine = store.query(enterprise={"plant": "E3"}.get(who, "E1"), limit=1)[0][0].id
    for method, path in routes(app):
        if path.endswith("/stream"):
            continue  # a stream does not end here; its scope is tested in test_scope
        reply = await client.request(method, fill(path, mine), headers=auth(who))
        writes = method != "GET" or path in ADMIN_ONLY_READS
        if writes and who != "admin":
            assert reply.status_code == 403, (who, method, path, reply.status_code)
        else:
            # let in: an answer, or what the route says of the request itself (422 for a body
            # or parameters missing, 404 for an object outside the scope or absent, 503
            # without InfluxDB), never a refusal of the caller
            assert reply.status_code not in (401, 403), (who, method, path, reply.status_code)
