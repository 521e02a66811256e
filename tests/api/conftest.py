"""The API in-process on real stores (SQLite files in tmp_path) and an in-memory registry."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.accounts import Accounts, token_hash
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.audit import AuditLog
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile

CST = timezone(timedelta(hours=8))
T0 = datetime(2025, 1, 10, 8, 0, tzinfo=CST)  # "now" of the API in these tests

ADMIN_TOKEN = "admin-secret"
VIEWER_TOKEN = "viewer-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ADMIN_NAME = "token-" + hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()[:8]  # its account
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
TOKENS: dict[str, Any] = {ADMIN_TOKEN: "admin", VIEWER_TOKEN: "viewer"}

# Named accounts (the `accounts` fixture), beside the legacy tokens above:
# name -> (role, scope, token)
NAMED_ACCOUNTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "chief": ("admin", {"all_regions": True}, "chief-secret"),
    "r2-admin": ("admin", {"regions": ["R2"]}, "r2-admin-secret"),
    "r1-viewer": ("viewer", {"regions": ["R1"]}, "r1-viewer-secret"),
    "plant-e1": ("enterprise", {"enterprises": ["E1"]}, "plant-e1-secret"),
}


def named(name: str) -> dict[str, str]:
    """The headers of a named account."""
    return {"Authorization": f"Bearer {NAMED_ACCOUNTS[name][2]}"}


def accounts_toml(accounts: dict[str, tuple[str, dict[str, Any], str]]) -> str:
    out = []
    for name, (role, scope, token) in accounts.items():
        lines = [
            "[[accounts]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'token_sha256 = "{token_hash(token)}"',
        ]
        for key, value in scope.items():
            rendered = "true" if value is True else "[" + ", ".join(f'"{v}"' for v in value) + "]"
            lines.append(f"{key} = {rendered}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


REGISTRY = {
    "enterprises": [
        {
            "id": "E1",
            "name": "Steel works",
            "region": "R1",
            "industry": "steel",
            "grade": "B",
            "outlets": [{"id": "DA001", "mn": "MN0001", "password": "pw-secret-1"}],
            "meters": [
                {"id": "PM1", "role": "production", "line": "L1"},
                {"id": "PM2", "role": "production", "line": "L2"},
                {"id": "TM1", "role": "treatment", "line": "T1"},
            ],
            "gates": [{"id": "G1", "name": "north gate"}],
        },
        {
            "id": "E2",
            "name": "Cement plant",
            "region": "R2",
            "outlets": [{"id": "DA001", "mn": "MN0002", "password": "pw-secret-2"}],
        },
    ]
}


def make_anomaly(
    *,
    type_: str = "over_limit",
    enterprise: str = "E1",
    subject: str = "outlet:DA001",
    started_at: datetime = T0,
    ended_at: datetime | None = None,
    severity: str = "alarm",
) -> Anomaly:
    anomaly = Anomaly(
        type=type_,
        severity=severity,  # type: ignore[arg-type]
        enterprise=enterprise,
        subject=subject,
        started_at=started_at,
        summary=f"{type_} at {subject}",
        evidence={"value": 12.5, "limit": 10.0},
        rule=type_,
        detected_at=started_at + timedelta(minutes=1),
    )
    return anomaly.closed(ended_at) if ended_at is not None else anomaly


@pytest.fixture
def registry() -> Registry:
    return Registry(RegistryFile.model_validate(REGISTRY))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AnomalyStore]:
    s = AnomalyStore(tmp_path / "anomalies.db")
    yield s
    s.close()


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    r = Regime(tmp_path / "regime.db")
    yield r
    r.close()


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.db")
    yield log
    log.close()


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    """The named accounts of `NAMED_ACCOUNTS` and the legacy `TOKENS`."""
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(NAMED_ACCOUNTS), encoding="utf-8")
    return Accounts(path, TOKENS)


@pytest.fixture
def make_app(
    store: AnomalyStore, regime: Regime, registry: Registry, audit: AuditLog
) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        kwargs: dict[str, Any] = {
            "store": store,
            "regime": regime,
            "registry": lambda: registry,
            "status": RegistryStatus(lambda: registry),
            "tokens": TOKENS,
            "clock": lambda: T0,
            "audit": audit,
        }
        kwargs.update(overrides)
        return create_app(**kwargs)

    return make


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


@pytest.fixture
async def named_client(
    make_app: Callable[..., FastAPI], accounts: Accounts
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with the named accounts (`named(...)` headers) and legacy tokens."""
    transport = httpx.ASGITransport(app=make_app(accounts=accounts))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c
