"""The app factory: the HTTP API of contracts.md section 4 (FastAPI, served by uvicorn).

Auth is a dependency of each router, not a middleware, so health checks and the Prometheus
endpoint (`metrics_app=prometheus_client.make_asgi_app()`, served at exactly `/metrics`) need
no token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp

from gateway.influx.factory import make_reader

from ..accounts import Accounts, Role
from ..anomalies.store import AnomalyStore
from ..audit import AuditLog
from ..cases.store import CaseStore
from ..config import InfluxSection
from ..regime import Regime
from ..registry import Registry
from . import admin, anomalies, control, enterprises, export, health, series, stream, types
from . import audit as audit_api
from . import cases as cases_api
from . import reports as reports_api
from .auth import make_auth
from .deps import Services
from .status import StatusProvider

_PAGE = (Path(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")
_REPORT = (Path(__file__).parent / "static" / "report.html").read_text(encoding="utf-8")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _always_ready() -> bool:
    return True


def create_app(
    *,
    store: AnomalyStore,
    regime: Regime,
    registry: Callable[[], Registry],
    status: StatusProvider,
    tokens: Mapping[str, Role] | None = None,
    accounts: Accounts | None = None,
    ready: health.ReadyCheck = _always_ready,
    clock: Callable[[], datetime] = _utc_now,
    stream_heartbeat_s: float = 15.0,
    stream_max_s: float | None = None,
    metrics_app: ASGIApp | None = None,
    reload_registry: Callable[[], list[str]] | None = None,
    influx: InfluxSection | None = None,
    audit: AuditLog | None = None,
    cases: CaseStore | None = None,
    archive: Path | None = None,
) -> FastAPI:
    """The API app. `registry` is called on every request (it follows reloads); `ready`
    answers `/readyz` (True, or the components not ready and why); `clock` gives "now" for
    what is in force now (the enterprise views). `app.state.services.streams` counts open
    Server-Sent Event connections. Charts read stored values from `influx` (the gateway's
    InfluxDB settings). With a case store (`cases`), `/api/v1/cases` serves the handling of
    anomalies that need action."""
    svc = Services(
        store=store,
        regime=regime,
        registry=registry,
        status=status,
        auth=make_auth(accounts if accounts is not None else Accounts(None, tokens)),
        clock=clock,
        stream_heartbeat_s=stream_heartbeat_s,
        stream_max_s=stream_max_s,
        series=make_reader(influx) if influx is not None else None,
        audit=audit,
        cases=cases,
        archive=archive,
    )
    app = FastAPI(
        title="Pollution-source monitoring gateway",
        version="1",
        description="Anomalies for enforcement, the stored values that explain them, enterprise "
        "status, and the control regime (heavy-pollution alerts, shutdown and curtailment "
        "orders). Bearer tokens of named accounts: `enterprise` reads its own enterprises, "
        "`viewer` reads, `officer` also handles anomalies, `admin` also issues alerts and "
        "orders; every read is limited to the account's regions and enterprises.",
    )
    app.state.services = svc
    app.include_router(stream.build_router(svc))  # before /anomalies/{id}
    app.include_router(series.build_router(svc))
    app.include_router(export.build_router(svc))
    app.include_router(anomalies.build_router(svc))
    app.include_router(types.build_router(svc))
    app.include_router(enterprises.build_router(svc))
    app.include_router(control.build_router(svc))
    if audit is not None:
        app.include_router(audit_api.build_router(svc))
    if cases is not None:
        app.include_router(cases_api.build_router(svc))
        app.include_router(reports_api.build_router(svc))  # the reports read the cases
    if reload_registry is not None:
        app.include_router(admin.build_router(svc, reload_registry))

    app.include_router(health.build_router(ready))
    if metrics_app is not None:
        health.add_metrics(app, metrics_app)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    @app.get("/report", include_in_schema=False)
    async def report_page() -> HTMLResponse:  # the printable reports (data from the API)
        return HTMLResponse(_REPORT)

    return app
