"""Bearer tokens and roles; the unauthenticated endpoints."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import ADMIN, T0, VIEWER

ALERT = {
    "level": "orange",
    "regions": ["R1"],
    "starts_at": T0.isoformat(),
    "ends_at": T0.replace(day=12).isoformat(),
}

READ_PATHS = [
    "/api/v1/anomalies",
    "/api/v1/anomalies/abc",
    "/api/v1/anomalies/stream",
    "/api/v1/enterprises",
    "/api/v1/enterprises/E1",
    "/api/v1/devices",
    "/api/v1/alerts",
    "/api/v1/orders",
]


@pytest.mark.parametrize("path", READ_PATHS)
async def test_reads_need_a_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "bearer token required"}


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Bearer ", "Basic YWRtaW46YWRtaW4=", "admin-secret"]
)
async def test_unknown_token_or_scheme_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/api/v1/anomalies", headers={"Authorization": header})
    assert response.status_code == 401


async def test_viewer_reads(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/anomalies", "/api/v1/enterprises", "/api/v1/alerts", "/api/v1/orders"):
        assert (await client.get(path, headers=VIEWER)).status_code == 200, path


async def test_viewer_cannot_write(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/alerts", json=ALERT, headers=VIEWER)
    assert response.status_code == 403
    assert response.json() == {"detail": "the admin role is required"}
    order = {**ALERT, "kind": "shutdown", "enterprise": "E1"}
    del order["level"], order["regions"]
    assert (await client.post("/api/v1/orders", json=order, headers=VIEWER)).status_code == 403
    assert (await client.delete("/api/v1/alerts/x", headers=VIEWER)).status_code == 403
    assert (await client.delete("/api/v1/orders/x", headers=VIEWER)).status_code == 403


async def test_write_without_token_is_401_not_403(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/alerts", json=ALERT)).status_code == 401


async def test_admin_writes(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/alerts", json=ALERT, headers=ADMIN)
    assert response.status_code == 201
    assert response.json()["level"] == "orange"


async def test_health_page_and_openapi_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    doc = (await client.get("/openapi.json")).json()
    assert "/api/v1/anomalies/stream" in doc["paths"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_readyz_reports_not_ready(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(ready=lambda: False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready"}


async def test_metrics_need_no_token(make_app: Callable[..., FastAPI]) -> None:
    from prometheus_client import make_asgi_app

    app = make_app(metrics_app=make_asgi_app())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
