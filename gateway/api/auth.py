"""Bearer-token auth: each route declares the least role it needs and gets the `Caller`.

Roles rank `enterprise` < `viewer` < `officer` < `admin` (see `gateway.accounts`); the
dependency `reader` takes any account, the others at least their role. Scope (which
enterprises a caller sees) is applied by the routes, through `Services.scope`.
"""


# No `from __future__ import annotations` here: FastAPI evaluates these annotations.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..accounts import Accounts, Caller, Role

_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`; roles enterprise, viewer, officer, admin",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Any account: the caller of the app's accounts (`Services.auth.accounts`)."""
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", _CHALLENGE)
    caller = request.app.state.services.auth.accounts.caller(credentials.credentials)
    if caller is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", _CHALLENGE)
    return caller  # type: ignore[no-any-return]


def _least(role: Role) -> Callable[..., Awaitable[Caller]]:
    async def check(caller: Annotated[Caller, Depends(reader)]) -> Caller:
        if not caller.at_least(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {role} role is required")
        return caller

    return check


viewer = _least("viewer")
officer = _least("officer")
admin = _least("admin")

# Route parameters: `caller: Reader` and so on (module-level, so that string annotations of
# modules with `from __future__ import annotations` resolve).
Reader = Annotated[Caller, Depends(reader)]
Viewer = Annotated[Caller, Depends(viewer)]
Officer = Annotated[Caller, Depends(officer)]
Admin = Annotated[Caller, Depends(admin)]


@dataclass(frozen=True, slots=True)
class Auth:
    """The accounts in force and the dependencies routes declare, each giving the caller."""

    accounts: Accounts
    reader: Callable[..., Awaitable[Caller]] = reader
    viewer: Callable[..., Awaitable[Caller]] = viewer
    officer: Callable[..., Awaitable[Caller]] = officer
    admin: Callable[..., Awaitable[Caller]] = admin


def make_auth(accounts: Accounts) -> Auth:
    return Auth(accounts)
