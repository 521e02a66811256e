"""What the routes share: the services they read and the documented error responses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, status

from gateway.influx.reader import SeriesReader

from ..accounts import Caller
from ..anomalies.model import Anomaly
from ..anomalies.store import AnomalyStore
from ..audit import AuditLog
from ..cases.store import CaseStore
from ..regime import Regime
from ..registry import Enterprise, Registry
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
    audit: AuditLog | None = None  # where state-changing calls are recorded
    cases: CaseStore | None = None  # the handling of anomalies that need action
    archive: Path | None = None  # the raw frame archive's folder (evidence packs read it)

    def visible(self, caller: Caller) -> frozenset[str] | None:
        """The enterprise ids the caller sees; None for every one (and those of none)."""
        return caller.visible(self.registry())

    def scope(self, caller: Caller, region: str | None = None) -> frozenset[str] | None:
        """The enterprise ids the caller sees, within `region` when given (a region covers
        those under it); None for every one."""
        visible = self.visible(caller)
        if region is None:
            return visible
        registry = self.registry()
        return frozenset(
            e.id
            for e in registry.data.enterprises
            if registry.regions.within(e.region, [region]) and (visible is None or e.id in visible)
        )

    def sees(self, caller: Caller, enterprise_id: str) -> bool:
        return caller.sees(enterprise_id, self.registry())

    def anomaly(self, anomaly_id: str, caller: Caller) -> Anomaly:
        """The anomaly, or 404 when there is none or it lies outside the caller's scope."""
        anomaly = self.store.get(anomaly_id)
        if anomaly is None or not self.sees(caller, anomaly.enterprise):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no anomaly {anomaly_id!r}")
        return anomaly

    def enterprise(self, enterprise_id: str, caller: Caller) -> Enterprise:
        """The registered enterprise, or 404 when there is none or it is outside the scope."""
        registry = self.registry()
        ent = registry.enterprise(enterprise_id)
        if ent is None or not caller.sees(enterprise_id, registry):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no enterprise {enterprise_id!r}")
        return ent


READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown bearer token"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: {"model": Problem, "description": "the account's role is below the one required"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "not found"}}
