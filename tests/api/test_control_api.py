"""Alerts, orders, enterprises and devices over HTTP."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway.regime import Regime
from tests.api.conftest import ADMIN, ADMIN_NAME, T0, VIEWER

H = timedelta(hours=1)


def window(start_h: int = -1, end_h: int = 24) -> dict[str, str]:
    return {"starts_at": (T0 + start_h * H).isoformat(), "ends_at": (T0 + end_h * H).isoformat()}


async def test_alert_lifecycle(client: httpx.AsyncClient, regime: Regime) -> None:
    created = await client.post(
        "/api/v1/alerts",
        json={"level": "red", "regions": ["R1"], "note": "红色预警", **window()},
        headers=ADMIN,
    )
    assert created.status_code == 201
    alert = created.json()
    assert alert["id"] and alert["enterprises"] == [] and alert["note"] == "红色预警"
    assert regime.get_alert(alert["id"]) is not None  # the same regime the rules read

    listed = await client.get("/api/v1/alerts", headers=VIEWER)
    assert [a["id"] for a in listed.json()] == [alert["id"]]
    at_t0 = await client.get("/api/v1/alerts", params={"active_at": T0.isoformat()}, headers=VIEWER)
    assert len(at_t0.json()) == 1
    later = (T0 + 48 * H).isoformat()
    assert (
        await client.get("/api/v1/alerts", params={"active_at": later}, headers=VIEWER)
    ).json() == []
    one = await client.get(f"/api/v1/alerts/{alert['id']}", headers=VIEWER)
    assert one.json() == alert
    assert alert["issued_by"] == ADMIN_NAME  # the account that posted it (legacy admin token)
    assert alert["withdrawn_at"] is None and alert["withdrawn_by"] is None

    withdrawn = await client.delete(
        f"/api/v1/alerts/{alert['id']}", params={"reason": "天气好转"}, headers=ADMIN
    )
    assert withdrawn.status_code == 204 and withdrawn.content == b""
    again = await client.delete(f"/api/v1/alerts/{alert['id']}", headers=ADMIN)
    assert again.status_code == 409 and "was withdrawn" in again.json()["detail"]
    kept = await client.get(f"/api/v1/alerts/{alert['id']}", headers=VIEWER)
    assert kept.status_code == 200  # withdrawn, not deleted: still on record, with who and why
    assert kept.json() == {
        **alert,
        "withdrawn_at": T0.isoformat(),
        "withdrawn_by": ADMIN_NAME,
        "withdraw_reason": "天气好转",
    }
    assert [a["id"] for a in (await client.get("/api/v1/alerts", headers=VIEWER)).json()] == [
        alert["id"]
    ]
    # no longer in force from its withdrawal (the API's "now", T0) on
    at_t0 = await client.get("/api/v1/alerts", params={"active_at": T0.isoformat()}, headers=VIEWER)
    assert at_t0.json() == []
    assert regime.in_force("E1", "R1", T0).level is None
    assert regime.in_force("E1", "R1", T0 - H / 2).level == "red"  # it was before
    current = await client.get(
        "/api/v1/alerts", params={"include_withdrawn": "false"}, headers=VIEWER
    )
    assert current.json() == []
    assert (await client.delete("/api/v1/alerts/nope", headers=ADMIN)).status_code == 404


async def test_invalid_alert_is_422_with_the_reason(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/alerts", json={"level": "orange", **window()}, headers=ADMIN
    )
    assert response.status_code == 422
    assert "at least one region or one enterprise" in response.text
    backwards = await client.post(
        "/api/v1/alerts", json={"level": "orange", "regions": ["R1"], **window(5, 1)}, headers=ADMIN
    )
    assert backwards.status_code == 422 and "must be after starts_at" in backwards.text
    naive = await client.post(
        "/api/v1/alerts",
        json={
            "level": "orange",
            "regions": ["R1"],
            "starts_at": "2025-01-10T00:00:00",
            "ends_at": "2025-01-11T00:00:00",
        },
        headers=ADMIN,
    )
    assert naive.status_code == 422 and "timezone" in naive.text


async def test_order_lifecycle(client: httpx.AsyncClient) -> None:
    body = {
        "kind": "curtailment",
        "enterprise": "E1",
        "lines": ["L2"],
        "percent": 30,
        "issued_by": "bureau",
        **window(),
    }
    created = await client.post("/api/v1/orders", json=body, headers=ADMIN)
    assert created.status_code == 201
    order = created.json()
    assert order["percent"] == 30 and order["lines"] == ["L2"]
    shutdown = await client.post(
        "/api/v1/orders",
        json={"kind": "shutdown", "enterprise": "E2", "percent": 50, **window()},
        headers=ADMIN,
    )
    assert shutdown.json()["percent"] is None
    by_e1 = await client.get("/api/v1/orders", params={"enterprise": "E1"}, headers=VIEWER)
    assert [o["id"] for o in by_e1.json()] == [order["id"]]
    assert (await client.get(f"/api/v1/orders/{order['id']}", headers=VIEWER)).json() == order
    assert order["issued_by"] == ADMIN_NAME  # the account's name: the body's "bureau" is ignored
    assert (await client.delete(f"/api/v1/orders/{order['id']}", headers=ADMIN)).status_code == 204
    kept = await client.get(f"/api/v1/orders/{order['id']}", headers=VIEWER)
    assert kept.status_code == 200
    assert kept.json() == {
        **order,
        "withdrawn_at": T0.isoformat(),
        "withdrawn_by": ADMIN_NAME,
        "withdraw_reason": None,
    }
    again = await client.delete(f"/api/v1/orders/{order['id']}", headers=ADMIN)
    assert again.status_code == 409
    assert (await client.delete("/api/v1/orders/nope", headers=ADMIN)).status_code == 404
    active = await client.get(
        "/api/v1/orders", params={"active_at": T0.isoformat()}, headers=VIEWER
    )
    assert [o["id"] for o in active.json()] == [shutdown.json()["id"]]
    current = await client.get(
        "/api/v1/orders", params={"include_withdrawn": "false"}, headers=VIEWER
    )
    assert [o["id"] for o in current.json()] == [shutdown.json()["id"]]
    missing_percent = await client.post(
        "/api/v1/orders", json={**body, "percent": None}, headers=ADMIN
    )
    assert missing_percent.status_code == 422 and "needs percent" in missing_percent.text


async def test_enterprise_shows_what_is_in_force_now(
    client: httpx.AsyncClient, regime: Regime
) -> None:
    await client.post(
        "/api/v1/alerts", json={"level": "orange", "regions": ["R1"], **window()}, headers=ADMIN
    )
    await client.post(  # over before "now" (T0)
        "/api/v1/alerts", json={"level": "red", "regions": ["R1"], **window(-5, -2)}, headers=ADMIN
    )
    order = await client.post(
        "/api/v1/orders",
        json={"kind": "shutdown", "enterprise": "E1", "lines": ["L1"], **window(0, 5)},
        headers=ADMIN,
    )
    response = await client.get("/api/v1/enterprises/E1", headers=VIEWER)
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["region"], body["grade"]) == ("Steel works", "R1", "B")
    assert body["control"]["level"] == "orange"
    assert [o["id"] for o in body["control"]["orders"]] == [order.json()["id"]]
    assert [m["line"] for m in body["meters"]] == ["L1", "L2", "T1"]
    assert body["outlets"] == [
        {"id": "DA001", "mn": "MN0001", "kind": "gas", "version": None, "open": False}
    ]
    assert "pw-secret" not in response.text  # passwords and keys never leave the gateway
    status = body["status"]
    assert status["devices_total"] == 5
    assert [line["line"] for line in status["lines"]] == ["L1", "L2"]
    assert all(d["online"] is None for d in status["devices"])

    listing = (await client.get("/api/v1/enterprises", headers=VIEWER)).json()
    assert [(e["id"], e["control_level"], e["orders_in_force"]) for e in listing] == [
        ("E1", "orange", 1),
        ("E2", None, 0),
    ]


async def test_unknown_enterprise_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/enterprises/NOPE", headers=VIEWER)
    assert response.status_code == 404


async def test_devices(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/v1/devices", headers=VIEWER)).json()
    assert {(d["kind"], d["id"], d["enterprise"]) for d in everything} == {
        ("hj212", "MN0001", "E1"),
        ("meter", "PM1", "E1"),
        ("meter", "PM2", "E1"),
        ("meter", "TM1", "E1"),
        ("gate", "G1", "E1"),
        ("hj212", "MN0002", "E2"),
    }
    assert all(d["online"] is None for d in everything)
    unknown = await client.get("/api/v1/devices", params={"state": "unknown"}, headers=VIEWER)
    assert len(unknown.json()) == 6
    offline = await client.get("/api/v1/devices", params={"state": "offline"}, headers=VIEWER)
    assert offline.json() == []  # nobody knows yet: the rule engine will
    bad = await client.get("/api/v1/devices", params={"state": "asleep"}, headers=VIEWER)
    assert bad.status_code == 422
