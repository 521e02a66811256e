"""`/api/v1/enterprises` and `/api/v1/devices`: the registry, live status, control in force."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from .deps import NOT_FOUND, READ_ERRORS, Services
from .schemas import DeviceOut, DeviceState, EnterpriseDetail, EnterpriseSummary


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", dependencies=[Depends(svc.auth.viewer)], responses=READ_ERRORS
    )

    @router.get("/enterprises", tags=["enterprises"], summary="Registered enterprises")
    async def list_enterprises() -> list[EnterpriseSummary]:
        now = svc.clock()
        out = []
        for ent in svc.registry().data.enterprises:
            control = svc.regime.in_force(ent.id, ent.region, now)
            out.append(
                EnterpriseSummary(
                    id=ent.id,
                    name=ent.name,
                    region=ent.region,
                    industry=ent.industry,
                    grade=ent.grade,
                    outlets=len(ent.outlets),
                    meters=len(ent.meters),
                    gates=len(ent.gates),
                    control_level=control.level,
                    orders_in_force=len(control.orders),
                )
            )
        return out

    @router.get(
        "/enterprises/{enterprise_id}",
        tags=["enterprises"],
        summary="One enterprise: devices, status, alerts and orders in force now",
        responses=NOT_FOUND,
    )
    async def get_enterprise(enterprise_id: str) -> EnterpriseDetail:
        for ent in svc.registry().data.enterprises:
            if ent.id == enterprise_id:
                control = svc.regime.in_force(ent.id, ent.region, svc.clock())
                return EnterpriseDetail.of(ent, svc.status.enterprise_status(ent.id), control)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no enterprise {enterprise_id!r}")

    @router.get("/devices", tags=["devices"], summary="Registered devices and their status")
    async def list_devices(state: DeviceState | None = None) -> list[DeviceOut]:
        return [DeviceOut.model_validate(d) for d in svc.status.devices(state)]

    return router
