"""`/api/v1/alerts` and `/api/v1/orders`: the control regime; reading needs a viewer token,
adding and deleting an admin token."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from ..regime import Alert, AlertSpec, Order, OrderSpec
from .deps import BODY_ERRORS, NOT_FOUND, READ_ERRORS, WRITE_ERRORS, Services
from .schemas import QueryTime

log = structlog.get_logger("gateway.api")

ActiveAt = Annotated[
    QueryTime | None,
    Query(description="only those in force at this time (ISO 8601; no offset: Beijing time)"),
]


def build_router(svc: Services) -> APIRouter:
    read = [Depends(svc.auth.viewer)]
    write = [Depends(svc.auth.admin)]
    router = APIRouter(prefix="/api/v1", tags=["control"])

    @router.get("/alerts", dependencies=read, responses=READ_ERRORS, summary="Alerts")
    async def list_alerts(active_at: ActiveAt = None) -> list[Alert]:
        return svc.regime.list_alerts(active_at)

    @router.post(
        "/alerts",
        dependencies=write,
        responses=BODY_ERRORS,
        status_code=status.HTTP_201_CREATED,
        summary="Declare a heavy-pollution alert",
    )
    async def add_alert(spec: AlertSpec) -> Alert:
        alert = svc.regime.add_alert(spec)
        log.info("alert added", alert_id=alert.id, level=alert.level)
        return alert

    @router.get("/alerts/{alert_id}", dependencies=read, responses={**READ_ERRORS, **NOT_FOUND})
    async def get_alert(alert_id: str) -> Alert:
        alert = svc.regime.get_alert(alert_id)
        if alert is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
        return alert

    @router.delete(
        "/alerts/{alert_id}",
        dependencies=write,
        responses={**WRITE_ERRORS, **NOT_FOUND},
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Withdraw an alert",
    )
    async def delete_alert(alert_id: str) -> None:
        if not svc.regime.delete_alert(alert_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
        log.info("alert deleted", alert_id=alert_id)

    @router.get("/orders", dependencies=read, responses=READ_ERRORS, summary="Orders")
    async def list_orders(active_at: ActiveAt = None, enterprise: str | None = None) -> list[Order]:
        return svc.regime.list_orders(active_at, enterprise)

    @router.post(
        "/orders",
        dependencies=write,
        responses=BODY_ERRORS,
        status_code=status.HTTP_201_CREATED,
        summary="Issue a shutdown or curtailment order",
    )
    async def add_order(spec: OrderSpec) -> Order:
        order = svc.regime.add_order(spec)
        log.info("order added", order_id=order.id, kind=order.kind, enterprise=order.enterprise)
        return order

    @router.get("/orders/{order_id}", dependencies=read, responses={**READ_ERRORS, **NOT_FOUND})
    async def get_order(order_id: str) -> Order:
        order = svc.regime.get_order(order_id)
        if order is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {order_id!r}")
        return order

    @router.delete(
        "/orders/{order_id}",
        dependencies=write,
        responses={**WRITE_ERRORS, **NOT_FOUND},
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Withdraw an order",
    )
    async def delete_order(order_id: str) -> None:
        if not svc.regime.delete_order(order_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {order_id!r}")
        log.info("order deleted", order_id=order_id)

    return router
