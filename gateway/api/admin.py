"""Administration: reload the registry without a restart. Every reload asked for, refused
ones too, writes an entry in the audit log (`registry.reload`: the counts of enterprises and
devices before and after, and the problems of a refused file)."""

# No `from __future__ import annotations` here: FastAPI evaluates the closure-local
# `Depends(svc.auth.admin)` annotation, which a string annotation would hide from it.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from ..accounts import Caller
from .audit import record
from .deps import WRITE_ERRORS, Services


class ReloadResult(BaseModel):
    enterprises: int
    devices: int


def build_router(svc: Services, reload: Callable[[], list[str]]) -> APIRouter:
    admin = Annotated[Caller, Depends(svc.auth.admin)]
    router = APIRouter(prefix="/api/v1", tags=["admin"])

    @router.post(
        "/registry/reload",
        responses={
            **WRITE_ERRORS,
            422: {"description": "the registry file has problems; the one in force is kept"},
        },
        summary="Reload the registry file (the one in force stays if the file has problems)",
    )
    async def reload_registry(caller: admin, request: Request) -> ReloadResult:
        before = svc.registry().counts()
        problems = reload()
        counts = svc.registry().counts()
        refused: dict[str, Any] = {"refused": True, "problems": problems} if problems else {}
        record(svc, caller, request, "registry.reload", before=before, after={**counts, **refused})
        if problems:
            raise HTTPException(422, problems)
        return ReloadResult(**counts)

    return router
