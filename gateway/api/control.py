"""`/api/v1/alerts` and `/api/v1/orders`: the control regime.

Reading takes any account and shows only what concerns its scope: an order when the caller
sees its enterprise, an alert when it covers an enterprise the caller sees or names a region
within the caller's regions (every alert for an account with all regions). Outside the scope
an alert or order does not exist (404).

Issuing and withdrawing take an admin whose scope holds what the alert or order names (403
otherwise). The issuer (`issued_by`) is the account that posts it; an order body's own
`issued_by` is accepted for compatibility and ignored.

`DELETE` withdraws, it does not delete: the alert or order keeps its record with
`withdrawn_at`, `withdrawn_by` and `withdraw_reason` (the `reason` parameter), is no longer in
force from then on, and stays readable here and in the lists (`include_withdrawn=false` leaves
withdrawn ones out; `active_at` never gives one withdrawn by then). A second withdrawal is 409.

Every change writes one entry in the audit log (`alert.issue`, `alert.withdraw`,
`order.issue`, `order.withdraw`) with the caller and the record before and after, in the
change's transaction: a change the audit log cannot record fails and is not made.
"""

# No `from __future__ import annotations` here: FastAPI evaluates the closure-local
# `Depends(svc.auth...)` annotations, which string annotations would hide from it.

from collections.abc import Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from ..accounts import Caller
from ..regime import Alert, AlertSpec, AlreadyWithdrawn, Order, OrderSpec
from ..registry import Registry
from .audit import record
from .deps import NOT_FOUND, READ_ERRORS, Services
from .schemas import Problem, QueryTime

log = structlog.get_logger("gateway.api")

ActiveAt = Annotated[
    QueryTime | None,
    Query(description="only those in force at this time (ISO 8601; no offset: Beijing time)"),
]
IncludeWithdrawn = Annotated[
    bool,
    Query(description="false: leave out every withdrawn one (by default they are listed)"),
]
Reason = Annotated[
    str | None,
    Query(max_length=2000, description="why it is withdrawn; kept with it and in the audit log"),
]

FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {
        "model": Problem,
        "description": "the account is not an admin, or what it names lies outside its scope",
    }
}
ALREADY_WITHDRAWN: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "already withdrawn: a withdrawal happens once"}
}
WRITES = {**READ_ERRORS, **FORBIDDEN}
ALERT_OUTSIDE_SCOPE = "the alert names regions or enterprises outside the account's scope"
BODY_WRITES = {**WRITES, 400: {"model": Problem, "description": "the body is not valid JSON"}}


def alert_scope(caller: Caller, registry: Registry) -> Callable[[Alert], bool]:
    """Whether the caller sees an alert: it covers an enterprise the caller sees (by name, or
    by the enterprise's region, as `Alert.covers`), or names a region within the caller's."""
    if caller.all_regions:
        return lambda _alert: True
    mine = [e for e in registry.data.enterprises if caller.sees(e.id, registry)]
    within = registry.regions.within

    def sees(alert: Alert) -> bool:
        return (
            any(alert.covers(e.id, e.region, within) for e in mine)  # a city's covers counties
            or any(within(r, caller.regions) for r in alert.regions)
        )

    return sees


def scoped_alert(alert: Alert, caller: Caller, registry: Registry) -> Alert:
    """The alert as the caller may read it: the enterprises it names outside the caller's
    scope are left out of its list."""
    if caller.all_regions:
        return alert
    named = [e for e in alert.enterprises if caller.sees(e, registry)]
    return alert if named == alert.enterprises else alert.model_copy(update={"enterprises": named})


def alert_within(caller: Caller, alert: AlertSpec, registry: Registry) -> bool:
    """Whether everything an alert names lies in the caller's scope (to issue or withdraw it)."""
    return caller.all_regions or (
        all(caller.sees(e, registry) for e in alert.enterprises)
        and all(registry.regions.within(r, caller.regions) for r in alert.regions)
    )


def build_router(svc: Services) -> APIRouter:
    reader = Annotated[Caller, Depends(svc.auth.reader)]
    admin = Annotated[Caller, Depends(svc.auth.admin)]
    router = APIRouter(prefix="/api/v1", tags=["control"])

    def visible_alert(alert_id: str, caller: Caller) -> Alert:
        alert = svc.regime.get_alert(alert_id)
        if alert is None or not alert_scope(caller, svc.registry())(alert):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
        return alert

    def visible_order(order_id: str, caller: Caller) -> Order:
        order = svc.regime.get_order(order_id)
        if order is None or not svc.sees(caller, order.enterprise):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {order_id!r}")
        return order

    def withdraw(
        regime_withdraw: Callable[..., Alert | Order | None],
        what: str,
        record_id: str,
        caller: Caller,
        request: Request,
        reason: str | None,
    ) -> None:
        """Withdraw an alert or order through the regime, its audit row in the same step;
        409 when it was withdrawn before."""
        try:
            withdrawn = regime_withdraw(
                record_id,
                by=caller.name,
                at=svc.clock(),
                reason=reason,
                audit=lambda before, after: record(
                    svc,
                    caller,
                    request,
                    f"{what}.withdraw",
                    target=record_id,
                    before=before.model_dump(mode="json"),
                    after=after.model_dump(mode="json"),
                    reason=after.withdraw_reason,
                ),
            )
        except AlreadyWithdrawn as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if withdrawn is None:  # gone since it was read: cannot happen, as nothing erases
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {record_id!r}")

    # -- alerts ---------------------------------------------------------------------------

    @router.get("/alerts", responses=READ_ERRORS, summary="Alerts (withdrawn ones too)")
    async def list_alerts(
        caller: reader, active_at: ActiveAt = None, include_withdrawn: IncludeWithdrawn = True
    ) -> list[Alert]:
        """Alerts that concern the caller's scope, highest level first. Withdrawn ones are
        listed with who withdrew them and why, unless `include_withdrawn=false`; with
        `active_at`, only those in force then (a withdrawn one only before its withdrawal)."""
        registry = svc.registry()
        sees = alert_scope(caller, registry)
        alerts = svc.regime.list_alerts(active_at, include_withdrawn=include_withdrawn)
        return [scoped_alert(a, caller, registry) for a in alerts if sees(a)]

    @router.post(
        "/alerts",
        responses=BODY_WRITES,
        status_code=status.HTTP_201_CREATED,
        summary="Declare a heavy-pollution alert",
    )
    async def add_alert(spec: AlertSpec, caller: admin, request: Request) -> Alert:
        """`issued_by` is the posting account; its regions and enterprises must lie in the
        account's scope."""
        if not alert_within(caller, spec, svc.registry()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, ALERT_OUTSIDE_SCOPE)
        alert = svc.regime.add_alert(
            spec,
            issued_by=caller.name,
            audit=lambda new: record(
                svc,
                caller,
                request,
                "alert.issue",
                target=new.id,
                after=new.model_dump(mode="json"),
            ),
        )
        log.info("alert issued", alert_id=alert.id, level=alert.level, by=caller.name)
        return alert

    @router.get(
        "/alerts/{alert_id}",
        responses={**READ_ERRORS, **NOT_FOUND},
        summary="One alert (withdrawn ones too)",
    )
    async def get_alert(alert_id: str, caller: reader) -> Alert:
        return scoped_alert(visible_alert(alert_id, caller), caller, svc.registry())

    @router.delete(
        "/alerts/{alert_id}",
        responses={**WRITES, **NOT_FOUND, **ALREADY_WITHDRAWN},
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Withdraw an alert (it stays on record, no longer in force)",
    )
    async def withdraw_alert(
        alert_id: str, caller: admin, request: Request, reason: Reason = None
    ) -> None:
        """Withdraws, never deletes: the alert stays readable with `withdrawn_at` (now),
        `withdrawn_by` (the account) and `withdraw_reason` (`reason`), and is no longer in
        force from now on. 409 when it was withdrawn before; 404 outside the scope."""
        alert = visible_alert(alert_id, caller)
        if not alert_within(caller, alert, svc.registry()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, ALERT_OUTSIDE_SCOPE)
        withdraw(svc.regime.withdraw_alert, "alert", alert_id, caller, request, reason)
        log.info("alert withdrawn", alert_id=alert_id, by=caller.name)

    # -- orders ---------------------------------------------------------------------------

    @router.get("/orders", responses=READ_ERRORS, summary="Orders (withdrawn ones too)")
    async def list_orders(
        caller: reader,
        active_at: ActiveAt = None,
        enterprise: str | None = None,
        include_withdrawn: IncludeWithdrawn = True,
    ) -> list[Order]:
        """Orders of the enterprises the caller sees, by start. Withdrawn ones are listed with
        who withdrew them and why, unless `include_withdrawn=false`; with `active_at`, only
        those in force then (a withdrawn one only before its withdrawal)."""
        registry = svc.registry()
        orders = svc.regime.list_orders(active_at, enterprise, include_withdrawn=include_withdrawn)
        return [o for o in orders if caller.sees(o.enterprise, registry)]

    @router.post(
        "/orders",
        responses=BODY_WRITES,
        status_code=status.HTTP_201_CREATED,
        summary="Issue a shutdown or curtailment order",
    )
    async def add_order(spec: OrderSpec, caller: admin, request: Request) -> Order:
        """`issued_by` is the posting account (the body's `issued_by` is ignored); the
        enterprise must lie in the account's scope."""
        if not svc.sees(caller, spec.enterprise):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"enterprise {spec.enterprise!r} is outside the account's scope",
            )
        order = svc.regime.add_order(
            spec,
            issued_by=caller.name,
            audit=lambda new: record(
                svc,
                caller,
                request,
                "order.issue",
                target=new.id,
                after=new.model_dump(mode="json"),
            ),
        )
        log.info(
            "order issued",
            order_id=order.id,
            kind=order.kind,
            enterprise=order.enterprise,
            by=caller.name,
        )
        return order

    @router.get(
        "/orders/{order_id}",
        responses={**READ_ERRORS, **NOT_FOUND},
        summary="One order (withdrawn ones too)",
    )
    async def get_order(order_id: str, caller: reader) -> Order:
        return visible_order(order_id, caller)

    @router.delete(
        "/orders/{order_id}",
        responses={**WRITES, **NOT_FOUND, **ALREADY_WITHDRAWN},
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Withdraw an order (it stays on record, no longer in force)",
    )
    async def withdraw_order(
        order_id: str, caller: admin, request: Request, reason: Reason = None
    ) -> None:
        """Withdraws, never deletes: the order stays readable with `withdrawn_at` (now),
        `withdrawn_by` (the account) and `withdraw_reason` (`reason`), and is no longer in
        force from now on. 409 when it was withdrawn before; 404 outside the scope."""
        visible_order(order_id, caller)
        withdraw(svc.regime.withdraw_order, "order", order_id, caller, request, reason)
        log.info("order withdrawn", order_id=order_id, by=caller.name)

    return router
