"""The filters of the anomaly list, shared by the list and its CSV export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query

from ..accounts import Caller
from .deps import Services
from .schemas import AnomalyFamily, AnomalyType, QueryTime


@dataclass(frozen=True, slots=True)
class AnomalyFilters:
    enterprise: str | None
    region: str | None
    type_: str | None
    family: str | None
    state: str | None
    since: datetime | None
    until: datetime | None

    def store_args(self, svc: Services, caller: Caller) -> dict[str, Any]:
        """The anomaly store's `query` arguments, within the caller's scope."""
        return {
            "enterprise": self.enterprise,
            "enterprises": svc.scope(caller, self.region),
            "type_": self.type_,
            "family": self.family,
            "state": self.state,
            "since": self.since,
            "until": self.until,
        }


def anomaly_filters(
    enterprise: str | None = None,
    region: Annotated[
        str | None, Query(description="a region id: its enterprises and those under it")
    ] = None,
    type_: Annotated[AnomalyType | None, Query(alias="type")] = None,
    family: AnomalyFamily | None = None,
    state: Literal["open", "closed"] | None = None,
    since: Annotated[
        QueryTime | None,
        Query(
            description="ISO 8601; anomalies still going on at or after it (no offset: "
            "Beijing time)"
        ),
    ] = None,
    until: Annotated[
        QueryTime | None,
        Query(description="ISO 8601; anomalies started at or before it (no offset: Beijing time)"),
    ] = None,
) -> AnomalyFilters:
    return AnomalyFilters(enterprise, region, type_, family, state, since, until)


Filters = Annotated[AnomalyFilters, Depends(anomaly_filters)]
