"""Bearer-token auth with two roles: `viewer` reads, `admin` also issues alerts and orders."""


# No `from __future__ import annotations` here: FastAPI must evaluate the closure-local
# `Depends(viewer)` annotation, which a string annotation would hide from it.

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

Role = Literal["viewer", "admin"]

_bearer = HTTPBearer(
    auto_error=False, description="`Authorization: Bearer <token>`; roles viewer and admin"
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Auth:
    """The two dependencies routes declare: `viewer` (any valid token) and `admin`."""

    viewer: Callable[..., Awaitable[Role]]
    admin: Callable[..., Awaitable[Role]]


def make_auth(tokens: Mapping[str, Role]) -> Auth:
    known = [(token.encode(), role) for token, role in tokens.items()]

    def role_of(token: str) -> Role | None:
        given = token.encode()
        found: Role | None = None
        for candidate, role in known:  # no early exit: compare every token in constant time
            if hmac.compare_digest(candidate, given):
                found = role
        return found

    async def viewer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Role:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", _CHALLENGE)
        role = role_of(credentials.credentials)
        if role is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", _CHALLENGE)
        return role

    async def admin(role: Annotated[Role, Depends(viewer)]) -> Role:
        if role != "admin":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the admin role is required")
        return role

    return Auth(viewer=viewer, admin=admin)
