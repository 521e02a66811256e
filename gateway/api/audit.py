"""`/api/v1/audit`: the audit log (admin only), newest first, with filters and paging; and the
one way the routes write to it (`record`).

Every state-changing call records one entry: issuing and withdrawing alerts and orders
(`gateway.api.control`) and reloading the registry (`gateway.api.admin`, refused reloads too).
Without an audit log (`Services.audit` None, as in some tests) the routes work unrecorded and
this router is not served.
"""

# No `from __future__ import annotations` here: FastAPI evaluates these annotations.

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from ..accounts import Caller
from ..audit import AuditEntry
from .auth import Admin
from .deps import WRITE_ERRORS, Services
from .schemas import QueryTime

MAX_OFFSET = 1_000_000_000


class AuditPage(BaseModel):
    items: list[AuditEntry] = Field(description="newest first")
    total: int = Field(description="entries matching the filters")
    limit: int
    offset: int


def client_address(request: Request) -> str | None:
    """The peer's address as the server saw it (behind a proxy, the proxy's unless the server
    is told to trust its forwarding headers)."""
    return request.client.host if request.client is not None else None


def record(
    svc: Services,
    caller: Caller,
    request: Request,
    action: str,
    *,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> None:
    """Append one entry for the caller's action, at the API's "now"; nothing when there is no
    audit log. Raises when the entry cannot be written (the caller's change must then fail)."""
    if svc.audit is None:
        return
    svc.audit.record(
        actor=caller.name,
        actor_role=caller.role,
        action=action,
        target=target,
        before=before,
        after=after,
        reason=reason,
        client=client_address(request),
        at=svc.clock(),
    )


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["audit"])

    @router.get(
        "/audit",
        responses=WRITE_ERRORS,
        summary="The audit log: who changed what and when, newest first (admin)",
    )
    async def list_audit(
        caller: Admin,
        actor: Annotated[str | None, Query(max_length=200, description="account name")] = None,
        action: Annotated[
            str | None,
            Query(max_length=200, description="e.g. alert.issue, order.withdraw, registry.reload"),
        ] = None,
        target: Annotated[
            str | None, Query(max_length=200, description="id of an alert or order")
        ] = None,
        since: Annotated[
            QueryTime | None,
            Query(description="ISO 8601; recorded at or after it (no offset: Beijing time)"),
        ] = None,
        until: Annotated[
            QueryTime | None,
            Query(description="ISO 8601; recorded before it (no offset: Beijing time)"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AuditPage:
        if not caller.all_regions:  # the record names every region's alerts, orders, accounts
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "the audit log is read by admins of the whole province"
            )
        audit = svc.audit
        assert audit is not None  # served only with an audit log
        items, total = audit.query(
            actor=actor,
            action=action,
            target=target,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return AuditPage(items=items, total=total, limit=limit, offset=offset)

    return router
