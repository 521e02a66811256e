"""The audit log: one entry per state-changing call with who, when, what, before and after;
append-only down to SQL; read by admins only; kept by the backup."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway import audit as audit_module
from gateway.accounts import Accounts
from gateway.audit import AuditLog
from gateway.backup import backup
from gateway.migrations import StateError
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import ADMIN, ADMIN_NAME, REGISTRY, T0, VIEWER, named

H = timedelta(hours=1)
ALERT = {
    "level": "orange",
    "regions": ["R1"],
    "starts_at": (T0 - H).isoformat(),
    "ends_at": (T0 + 24 * H).isoformat(),
}
ORDER = {
    "kind": "shutdown",
    "enterprise": "E1",
    "lines": ["L1"],
    "starts_at": (T0 - H).isoformat(),
    "ends_at": (T0 + 24 * H).isoformat(),
    "issued_by": "someone else",
}


class Clock:
    """The API's "now", moved by the tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def client_of(app: FastAPI, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, **kw)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def registries(registry: Registry) -> list[Registry]:
    """The registry in force is the last; a reload that succeeds appends the bigger one."""
    return [registry]


@pytest.fixture
async def api(
    make_app: Callable[..., FastAPI],
    accounts: Accounts,
    clock: Clock,
    registries: list[Registry],
) -> AsyncIterator[httpx.AsyncClient]:
    bigger = {
        "enterprises": [
            *REGISTRY["enterprises"],
            {
                "id": "E3",
                "name": "Glass works",
                "region": "R1",
                "outlets": [{"id": "DA001", "mn": "MN0003", "password": "pw-secret-3"}],
            },
        ]
    }
    answers: list[list[str]] = [[], ["registry.toml: enterprises[1].id: appears twice"]]

    def reload() -> list[str]:
        problems = answers.pop(0)
        if not problems:
            registries.append(Registry(RegistryFile.model_validate(bigger)))
        return problems

    app = make_app(
        accounts=accounts,
        clock=clock,
        registry=lambda: registries[-1],
        reload_registry=reload,
    )
    async for c in client_of(app):
        yield c


async def test_every_state_change_writes_one_entry_with_actor_before_and_after(
    api: httpx.AsyncClient, audit: AuditLog, clock: Clock
) -> None:
    alert = (await api.post("/api/v1/alerts", json=ALERT, headers=named("chief"))).json()
    clock.now = T0 + timedelta(minutes=1)
    order = (await api.post("/api/v1/orders", json=ORDER, headers=ADMIN)).json()
    clock.now = T0 + timedelta(minutes=2)
    withdrawn = await api.delete(
        f"/api/v1/orders/{order['id']}", params={"reason": "企业已整改"}, headers=named("chief")
    )
    assert withdrawn.status_code == 204
    clock.now = T0 + timedelta(minutes=3)
    assert (await api.delete(f"/api/v1/alerts/{alert['id']}", headers=ADMIN)).status_code == 204
    clock.now = T0 + timedelta(minutes=4)
    assert (await api.post("/api/v1/registry/reload", headers=named("chief"))).status_code == 200
    clock.now = T0 + timedelta(minutes=5)
    refused = await api.post("/api/v1/registry/reload", headers=ADMIN)
    assert refused.status_code == 422

    # what changes nothing records nothing: refused writes, a second withdrawal, reads
    assert (await api.post("/api/v1/orders", json=ORDER, headers=VIEWER)).status_code == 403
    assert (await api.delete(f"/api/v1/orders/{order['id']}", headers=ADMIN)).status_code == 409
    assert (await api.delete("/api/v1/alerts/nope", headers=ADMIN)).status_code == 404
    await api.get("/api/v1/orders", headers=ADMIN)

    entries, total = audit.query()
    assert total == 6
    assert [(e.action, e.actor, e.actor_role, e.target) for e in entries] == [
        ("registry.reload", ADMIN_NAME, "admin", None),
        ("registry.reload", "chief", "admin", None),
        ("alert.withdraw", ADMIN_NAME, "admin", alert["id"]),
        ("order.withdraw", "chief", "admin", order["id"]),
        ("order.issue", ADMIN_NAME, "admin", order["id"]),
        ("alert.issue", "chief", "admin", alert["id"]),
    ]  # newest first
    assert [e.seq for e in entries] == [6, 5, 4, 3, 2, 1]
    assert [e.at for e in entries] == [T0 + timedelta(minutes=m) for m in (5, 4, 3, 2, 1, 0)]
    assert all(e.at.utcoffset() == timedelta(0) for e in entries)  # kept in UTC
    assert {e.client for e in entries} == {"127.0.0.1"}
    refused_reload, reload, alert_withdraw, order_withdraw, order_issue, alert_issue = entries

    assert alert_issue.before is None and alert_issue.after == alert
    assert alert["issued_by"] == "chief"
    assert order_issue.before is None and order_issue.after == order
    assert order["issued_by"] == ADMIN_NAME  # from the account, not the body
    assert order_withdraw.before == order
    assert order_withdraw.after == {
        **order,
        "withdrawn_at": (T0 + timedelta(minutes=2)).isoformat(),
        "withdrawn_by": "chief",
        "withdraw_reason": "企业已整改",
    }
    assert order_withdraw.reason == "企业已整改"
    assert alert_withdraw.before == alert and alert_withdraw.reason is None
    assert alert_withdraw.after["withdrawn_by"] == ADMIN_NAME
    assert reload.before == {"enterprises": 2, "devices": 2}  # data loggers
    assert reload.after == {"enterprises": 3, "devices": 3}
    assert refused_reload.before == {"enterprises": 3, "devices": 3}
    assert refused_reload.after == {
        "enterprises": 3,
        "devices": 3,
        "refused": True,
        "problems": ["registry.toml: enterprises[1].id: appears twice"],
    }

    # the same over HTTP, for an admin
    page = await api.get("/api/v1/audit", headers=named("chief"))
    assert page.status_code == 200
    body = page.json()
    assert (body["total"], body["limit"], body["offset"]) == (6, 100, 0)
    first = body["items"][-1]
    assert first["action"] == "alert.issue" and first["actor"] == "chief"
    assert first["at"] == T0.astimezone(UTC).isoformat()  # UTC with its offset: +00:00
    assert first["after"] == alert and first["before"] is None


async def test_the_audit_filters_and_pages(
    api: httpx.AsyncClient, clock: Clock, audit: AuditLog
) -> None:
    ids = []
    for minute in range(5):
        clock.now = T0 + timedelta(minutes=minute)
        who = ADMIN if minute % 2 else named("chief")
        ids.append((await api.post("/api/v1/orders", json=ORDER, headers=who)).json()["id"])
    clock.now = T0 + timedelta(minutes=10)
    await api.delete(f"/api/v1/orders/{ids[0]}", headers=ADMIN)

    async def query(**params: Any) -> dict[str, Any]:
        reply = await api.get("/api/v1/audit", params=params, headers=ADMIN)
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    assert (await query(actor="chief"))["total"] == 3
    assert (await query(actor=ADMIN_NAME))["total"] == 3
    assert (await query(action="order.withdraw"))["total"] == 1
    by_target = await query(target=ids[0])
    assert [e["action"] for e in by_target["items"]] == ["order.withdraw", "order.issue"]
    window = await query(
        since=(T0 + timedelta(minutes=1)).isoformat(), until=(T0 + timedelta(minutes=3)).isoformat()
    )
    assert [e["target"] for e in window["items"]] == [ids[2], ids[1]]  # until is exclusive
    naive = await query(since="2025-01-10T08:04:00")  # no offset: Beijing time
    assert naive["total"] == 2
    paged = await query(limit=2, offset=1)
    assert paged["total"] == 6 and [e["seq"] for e in paged["items"]] == [5, 4]
    assert (await query(actor="chief", action="order.withdraw"))["total"] == 0
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"since": "yesterday"}):
        reply = await api.get("/api/v1/audit", params=bad, headers=ADMIN)
        assert reply.status_code == 422, bad


async def test_only_an_admin_reads_the_audit(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/audit")).status_code == 401
    for headers in (VIEWER, named("r1-viewer"), named("plant-e1")):
        reply = await api.get("/api/v1/audit", headers=headers)
        assert reply.status_code == 403
        assert reply.json() == {"detail": "the admin role is required"}
    # an admin of one region does not read what the record says of the others
    scoped = await api.get("/api/v1/audit", headers=named("r2-admin"))
    assert scoped.status_code == 403 and "whole province" in scoped.json()["detail"]
    assert (await api.get("/api/v1/audit", headers=named("chief"))).status_code == 200


async def test_the_audit_cannot_be_changed_or_deleted_through_sql(
    api: httpx.AsyncClient, audit: AuditLog, tmp_path: Path
) -> None:
    await api.post("/api/v1/alerts", json=ALERT, headers=ADMIN)
    await api.post("/api/v1/orders", json=ORDER, headers=ADMIN)
    before, _ = audit.query()
    db = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    try:
        for statement in (
            "UPDATE audit SET actor = 'nobody'",
            "UPDATE audit SET after = NULL WHERE seq = 1",
            "DELETE FROM audit",
            "DELETE FROM audit WHERE seq = 2",
            "INSERT OR REPLACE INTO audit (seq, at, actor, actor_role, action)"
            " VALUES (1, '2025-01-01T00:00:00.000000+00:00', 'x', 'admin', 'alert.issue')",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 2
    finally:
        db.close()
    assert audit.query() == (before, 2)


async def test_without_an_audit_log_the_routes_still_work(
    make_app: Callable[..., FastAPI], regime: Regime
) -> None:
    async for api in client_of(make_app(audit=None, reload_registry=list)):
        order = (await api.post("/api/v1/orders", json=ORDER, headers=ADMIN)).json()
        assert order["issued_by"] == ADMIN_NAME
        assert (await api.delete(f"/api/v1/orders/{order['id']}", headers=ADMIN)).status_code == 204
        alert = (await api.post("/api/v1/alerts", json=ALERT, headers=ADMIN)).json()
        assert (await api.delete(f"/api/v1/alerts/{alert['id']}", headers=ADMIN)).status_code == 204
        assert (await api.post("/api/v1/registry/reload", headers=ADMIN)).status_code == 200
        assert (await api.get("/api/v1/audit", headers=ADMIN)).status_code == 404  # not served
    withdrawn = regime.get_order(order["id"])
    assert withdrawn is not None and withdrawn.withdrawn_by == ADMIN_NAME


async def test_a_change_the_audit_cannot_record_is_not_made(
    make_app: Callable[..., FastAPI], regime: Regime, tmp_path: Path
) -> None:
    broken = AuditLog(tmp_path / "broken-audit.db")
    app = make_app(audit=broken)
    async for api in client_of(app, raise_app_exceptions=False):
        order = (await api.post("/api/v1/orders", json=ORDER, headers=ADMIN)).json()
        broken.close()  # every write to it fails from here on
        assert (await api.post("/api/v1/alerts", json=ALERT, headers=ADMIN)).status_code == 500
        assert (await api.post("/api/v1/orders", json=ORDER, headers=ADMIN)).status_code == 500
        assert (await api.delete(f"/api/v1/orders/{order['id']}", headers=ADMIN)).status_code == 500
        again = (await api.get(f"/api/v1/orders/{order['id']}", headers=ADMIN)).json()
    assert regime.list_alerts() == [] and len(regime.list_orders()) == 1
    assert again["withdrawn_at"] is None  # the withdrawal was not made
    reopened = Regime(tmp_path / "regime.db")  # nor stored
    try:
        assert reopened.list_alerts() == [] and len(reopened.list_orders()) == 1
        assert reopened.list_orders()[0].withdrawn_at is None
    finally:
        reopened.close()


# -- the store itself ---------------------------------------------------------------------


def test_entries_survive_a_restart_and_times_must_be_aware(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    entry = log.record(
        actor="chief",
        actor_role="admin",
        action="order.issue",
        target="o1",
        after={"note": "停产令", "lines": []},
        at=T0,
    )
    assert entry.seq == 1 and entry.at == T0 and entry.at.tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        log.record(actor="chief", actor_role="admin", action="x", at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="actor"):
        log.record(actor="", actor_role="admin", action="x")
    log.close()
    again = AuditLog(tmp_path / "audit.sqlite")
    try:
        assert again.query() == ([entry], 1)
        assert again.record(actor="a", actor_role="admin", action="y").seq == 2
        assert len(again) == 2
    finally:
        again.close()


def test_the_audit_store_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    AuditLog(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == audit_module.SCHEMA_VERSION == 1
    db.execute("PRAGMA user_version = 9")
    db.close()
    with pytest.raises(StateError, match="audit log format version 9 is newer"):
        AuditLog(path)


def test_the_backup_copies_the_audit_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = AuditLog(data / "audit.sqlite")
    for i in range(3):
        log.record(actor="chief", actor_role="admin", action="alert.issue", target=f"a{i}")
    try:
        report = backup(data, tmp_path / "copy")
    finally:
        log.close()
    assert report.stores == {"audit.sqlite": 1}
    copy = AuditLog(tmp_path / "copy" / "audit.sqlite")
    try:
        entries, total = copy.query()
        assert total == 3 and [e.target for e in entries] == ["a2", "a1", "a0"]
    finally:
        copy.close()
    db = sqlite3.connect(tmp_path / "copy" / "audit.sqlite")
    try:  # the copy is append-only too
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")
    finally:
        db.close()
