"""What the routes share: the services they read and the documented error responses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.influx.reader import SeriesReader

from ..anomalies.store import AnomalyStore
from ..regime import Regime
from ..registry import Registry
from .auth import Auth
from .schemas import Problem
from .status import StatusProvider


@dataclass
class StreamStats:
    """Server-Sent Event connections: open now and opened since start."""

    open: int = 0
    opened_total: int = 0


@dataclass
class Services:
    store: AnomalyStore
    regime: Regime
    registry: Callable[[], Registry]
    status: StatusProvider
    auth: Auth
    clock: Callable[[], datetime]
    stream_heartbeat_s: float
    stream_max_s: float | None
    streams: StreamStats = field(default_factory=StreamStats)
    series: SeriesReader | None = None  # where charts read stored values


READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown bearer token"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: {"model": Problem, "description": "the token's role is not admin"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    400: {"model": Problem, "description": "the body is not valid JSON"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "not found"}}
