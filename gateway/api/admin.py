"""Administration: reload the registry without a restart."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from .deps import WRITE_ERRORS, Services


class ReloadResult(BaseModel):
    enterprises: int
    devices: int


def build_router(svc: Services, reload: Callable[[], list[str]]) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["admin"])

    @router.post(
        "/registry/reload",
        dependencies=[Depends(svc.auth.admin)],
        responses={
            **WRITE_ERRORS,
            422: {"description": "the registry file has problems; the one in force is kept"},
        },
        summary="Reload the registry file (the one in force stays if the file has problems)",
    )
    async def reload_registry() -> ReloadResult:
        problems = reload()
        if problems:
            raise HTTPException(422, problems)
        registry = svc.registry()
        return ReloadResult(
            enterprises=len(registry.data.enterprises),
            devices=sum(1 for _ in registry.devices()),
        )

    return router
