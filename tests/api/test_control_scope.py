"""Scope on the control regime: an account reads only the orders of enterprises it sees and
the alerts that concern its scope (outside it they do not exist: 404); an admin issues and
withdraws only within its scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from gateway.regime import Regime
from tests.api.conftest import ADMIN, ADMIN_NAME, T0, named

H = timedelta(hours=1)
WINDOW = {"starts_at": (T0 - H).isoformat(), "ends_at": (T0 + 24 * H).isoformat()}


async def issue(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    reply = await api.post(f"/api/v1/{path}", json={**body, **WINDOW}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]  # type: ignore[no-any-return]


async def test_an_account_of_e1_does_not_see_the_orders_of_e2(
    named_client: httpx.AsyncClient,
) -> None:
    api = named_client
    e1 = await issue(api, "orders", {"kind": "shutdown", "enterprise": "E1"})
    e2 = await issue(api, "orders", {"kind": "curtailment", "enterprise": "E2", "percent": 30})
    unregistered = await issue(api, "orders", {"kind": "shutdown", "enterprise": "E9"})
    sees = {
        "plant-e1": {e1},  # an enterprise account reads its own enterprises' orders
        "r1-viewer": {e1},  # E1 lies in R1
        "r2-admin": {e2},
        "chief": {e1, e2, unregistered},
    }
    for who, ids in sees.items():
        listed = await api.get("/api/v1/orders", headers=named(who))
        assert listed.status_code == 200
        assert {o["id"] for o in listed.json()} == ids, who
        by_e2 = await api.get("/api/v1/orders", params={"enterprise": "E2"}, headers=named(who))
        assert {o["id"] for o in by_e2.json()} == ids & {e2}, who  # no filter reaches past it
        for order_id in (e1, e2, unregistered):
            one = await api.get(f"/api/v1/orders/{order_id}", headers=named(who))
            if order_id in ids:
                assert one.status_code == 200 and one.json()["id"] == order_id
            else:  # as if it did not exist
                assert one.status_code == 404, (who, order_id)
                assert one.json() == {"detail": f"no order {order_id!r}"}


async def test_a_withdrawn_order_stays_visible_to_its_enterprise_with_who_and_why(
    named_client: httpx.AsyncClient,
) -> None:
    api = named_client
    order_id = await issue(api, "orders", {"kind": "shutdown", "enterprise": "E1"})
    withdrawn = await api.delete(
        f"/api/v1/orders/{order_id}", params={"reason": "误发"}, headers=named("chief")
    )
    assert withdrawn.status_code == 204
    seen = (await api.get(f"/api/v1/orders/{order_id}", headers=named("plant-e1"))).json()
    assert (seen["withdrawn_at"], seen["withdrawn_by"], seen["withdraw_reason"]) == (
        T0.isoformat(),
        "chief",
        "误发",
    )
    assert seen["issued_by"] == ADMIN_NAME
    listed = (await api.get("/api/v1/orders", headers=named("plant-e1"))).json()
    assert [o["id"] for o in listed] == [order_id]
    in_force = await api.get(
        "/api/v1/orders", params={"active_at": T0.isoformat()}, headers=named("plant-e1")
    )
    assert in_force.json() == []
    detail = (await api.get("/api/v1/enterprises/E1", headers=named("plant-e1"))).json()
    assert detail["control"]["orders"] == []  # no longer in force now


async def test_alerts_are_seen_where_they_concern_the_scope(
    named_client: httpx.AsyncClient,
) -> None:
    api = named_client
    r1 = await issue(api, "alerts", {"level": "orange", "regions": ["R1"]})
    r2 = await issue(api, "alerts", {"level": "red", "regions": ["R2"]})
    named_e1 = await issue(api, "alerts", {"level": "yellow", "enterprises": ["E1"]})
    elsewhere = await issue(api, "alerts", {"level": "red", "regions": ["R7"]})
    sees = {
        "plant-e1": {r1, named_e1},  # covers E1 by its region R1, or names it
        "r1-viewer": {r1, named_e1},
        "r2-admin": {r2},
        "chief": {r1, r2, named_e1, elsewhere},  # all regions: every alert
    }
    for who, ids in sees.items():
        listed = await api.get("/api/v1/alerts", headers=named(who))
        assert {a["id"] for a in listed.json()} == ids, who
        for alert_id in (r1, r2, named_e1, elsewhere):
            one = await api.get(f"/api/v1/alerts/{alert_id}", headers=named(who))
            assert one.status_code == (200 if alert_id in ids else 404), (who, alert_id)


async def test_an_admin_issues_and_withdraws_only_within_its_scope(
    named_client: httpx.AsyncClient, regime: Regime
) -> None:
    api = named_client
    admin = named("r2-admin")  # an admin of region R2 (enterprise E2)
    outside = await api.post(
        "/api/v1/orders", json={"kind": "shutdown", "enterprise": "E1", **WINDOW}, headers=admin
    )
    assert outside.status_code == 403 and "outside the account's scope" in outside.text
    inside = await api.post(
        "/api/v1/orders", json={"kind": "shutdown", "enterprise": "E2", **WINDOW}, headers=admin
    )
    assert inside.status_code == 201 and inside.json()["issued_by"] == "r2-admin"
    wide = await api.post(
        "/api/v1/alerts", json={"level": "red", "regions": ["R1", "R2"], **WINDOW}, headers=admin
    )
    assert wide.status_code == 403
    assert len(regime.list_orders()) == 1 and regime.list_alerts() == []

    e1_order = await issue(api, "orders", {"kind": "shutdown", "enterprise": "E1"})
    assert (await api.delete(f"/api/v1/orders/{e1_order}", headers=admin)).status_code == 404
    both = await issue(api, "alerts", {"level": "red", "regions": ["R1", "R2"]})
    # it sees the alert (it covers R2) but may not withdraw what reaches beyond its scope
    assert (await api.delete(f"/api/v1/alerts/{both}", headers=admin)).status_code == 403
    alert = regime.get_alert(both)
    assert alert is not None and alert.withdrawn_at is None
    own = await api.post(
        "/api/v1/alerts", json={"level": "orange", "regions": ["R2"], **WINDOW}, headers=admin
    )
    assert own.status_code == 201 and own.json()["issued_by"] == "r2-admin"
    assert (
        await api.delete(f"/api/v1/alerts/{own.json()['id']}", headers=admin)
    ).status_code == 204
    # a viewer of the scope still cannot write
    reader = named("r1-viewer")
    assert (await api.delete(f"/api/v1/orders/{e1_order}", headers=reader)).status_code == 403
