"""Liveness and readiness: `/healthz` (the process answers) and `/readyz` (the gateway takes
data; otherwise 503 naming each component that is not ready, and why). No token needed.

`health_app` serves them, with `/metrics`, when the rules (and so the rest of the API) are off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .schemas import Health


@dataclass(frozen=True, slots=True)
class NotReady:
    """A component that is not ready (`gateway`, `spool`, `influx`) and why."""

    component: str
    reason: str


# True: ready; False: not ready (no detail); a list: not ready for each entry (empty: ready)
ReadyCheck = Callable[[], bool | Sequence[NotReady]]


class ComponentProblem(BaseModel):
    component: str
    reason: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    problems: list[ComponentProblem] | None = None
    # upstream forward targets (gateway/forward): connection, backlog, lag, counts; never
    # a reason for "not ready"
    forward: list[dict[str, Any]] | None = None


def _always_ready() -> bool:
    return True


def build_router(ready: ReadyCheck = _always_ready) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        summary="The gateway is ready to take data",
        response_model_exclude_none=True,
        responses={503: {"model": Readiness, "description": "not ready, and why"}},
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        answer = ready()
        status = getattr(request.app.state, "forward_status", None)
        forward = status() if status is not None else None
        if answer is True or (not isinstance(answer, bool) and not answer):
            return Readiness(status="ready", forward=forward)
        response.status_code = 503
        if isinstance(answer, bool):
            return Readiness(status="not ready", forward=forward)
        problems = [ComponentProblem(component=p.component, reason=p.reason) for p in answer]
        return Readiness(status="not ready", problems=problems, forward=forward)

    return router


class AsgiEndpoint:
    """An ASGI app as a route endpoint (a plain function would be taken for a handler)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, send)


def add_metrics(app: FastAPI, metrics_app: ASGIApp) -> None:
    """Serve `metrics_app` (Prometheus) at exactly `/metrics`."""
    app.router.routes.append(Route("/metrics", AsgiEndpoint(metrics_app), methods=["GET"]))


def health_app(ready: ReadyCheck, metrics_app: ASGIApp | None = None) -> FastAPI:
    """`/healthz`, `/readyz` and, given `metrics_app`, `/metrics`: nothing else."""
    app = FastAPI(title="Pollution-source monitoring gateway", version="1")
    app.include_router(build_router(ready))
    if metrics_app is not None:
        add_metrics(app, metrics_app)
    return app
