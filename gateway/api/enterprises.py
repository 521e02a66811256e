"""`/api/v1/enterprises` and `/api/v1/devices`: the registry, live status, control in force."""

from __future__ import annotations

from fastapi import APIRouter

from ..influx.reader import QueryError
from ..plan_check import problems_of
from ..reports.transport import status as transport_status
from ..status.make_up import make_up, owing
from .auth import Reader
from .control import scoped_alert
from .deps import NOT_FOUND, READ_ERRORS, Services
from .schemas import (
    DeviceOut,
    DeviceState,
    EnterpriseDetail,
    EnterpriseSummary,
    PlanProblemOut,
    RegionOut,
)


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=READ_ERRORS)

    @router.get("/enterprises", tags=["enterprises"], summary="Registered enterprises")
    async def list_enterprises(caller: Reader) -> list[EnterpriseSummary]:
        now = svc.clock()
        out = []
        registry = svc.registry()
        for ent in registry.data.enterprises:
            if not caller.sees(ent.id, registry):
                continue
            control = svc.regime.in_force(ent.id, ent.region, now)
            out.append(
                EnterpriseSummary(
                    id=ent.id,
                    name=ent.name,
                    region=ent.region,
                    region_name=registry.regions.name(ent.region),
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
    async def get_enterprise(enterprise_id: str, caller: Reader) -> EnterpriseDetail:
        ent = svc.enterprise(enterprise_id, caller)
        control = svc.regime.in_force(ent.id, ent.region, svc.clock())
        registry = svc.registry()
        alerts = [scoped_alert(a, caller, registry) for a in control.alerts]
        control = control.model_copy(update={"alerts": alerts})
        problems = [
            PlanProblemOut(code=p.code, key=p.key, text=p.text)
            for p in problems_of(registry)
            if p.enterprise == ent.id
        ]
        status = svc.status.enterprise_status(ent.id)
        if status is not None and svc.series is not None and owing(ent):
            try:  # 补齐错峰 of heating-duty lines, from stored power (null when unreadable)
                status = {**status, "make_up": await make_up(svc.series, ent, svc.clock())}
            except QueryError:
                status = {**status, "make_up": None}
        detail = EnterpriseDetail.of(ent, status, control, problems)
        used = await transport_status(svc.series, registry, ent, svc.clock())
        return detail.model_copy(update={"transport": used})

    @router.get("/regions", tags=["enterprises"], summary="Regions that hold visible enterprises")
    async def list_regions(caller: Reader) -> list[RegionOut]:
        registry = svc.registry()
        used: set[str] = set()
        for ent in registry.data.enterprises:
            if caller.sees(ent.id, registry) and ent.region:
                used.update(registry.regions.chain(ent.region))
        return [
            RegionOut(id=r.id, name=r.name, parent=r.parent, level=r.level)
            for r in registry.data.regions
            if r.id in used
        ]

    @router.get("/devices", tags=["devices"], summary="Registered devices and their status")
    async def list_devices(caller: Reader, state: DeviceState | None = None) -> list[DeviceOut]:
        registry = svc.registry()
        return [
            DeviceOut.model_validate(d)
            for d in svc.status.devices(state)
            if caller.sees(d["enterprise"], registry)
        ]

    return router
