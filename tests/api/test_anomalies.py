"""`/api/v1/anomalies`: filters, paging and lookup against a store of real anomalies."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.anomalies.types import TYPES
from gateway.registry import Registry
from tests.api.conftest import T0, VIEWER, make_anomaly

H = timedelta(hours=1)


@pytest.fixture
def recorded(store: AnomalyStore) -> list[Anomaly]:
    """24 anomalies over two enterprises and four types, one starting every hour; every third
    one closed after 30 minutes. Newest first, as the API orders them."""
    types = ["over_limit", "device_offline", "treatment_not_running", "banned_vehicle_entry"]
    out = []
    for i in range(24):
        a = make_anomaly(
            type_=types[i % 4],
            enterprise="E1" if i % 2 == 0 else "E2",
            subject=f"mn:MN{i:04d}",
            started_at=T0 + i * H,
            ended_at=T0 + i * H + H / 2 if i % 3 == 0 else None,
        )
        assert store.record(a) is not None
        out.append(a)
    return sorted(out, key=lambda a: a.started_at, reverse=True)


async def ids(client: httpx.AsyncClient, **params: object) -> list[str]:
    response = await client.get("/api/v1/anomalies", params=params, headers=VIEWER)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"]) or "limit" in params or "offset" in params
    return [item["id"] for item in body["items"]]


async def test_all_newest_first(
    client: httpx.AsyncClient, recorded: list[Anomaly], registry: Registry
) -> None:
    response = await client.get("/api/v1/anomalies", headers=VIEWER)
    body = response.json()
    assert body["total"] == 24 and body["limit"] == 100 and body["offset"] == 0
    assert [i["id"] for i in body["items"]] == [a.id for a in recorded]
    first = body["items"][0]
    assert first == {
        **recorded[0].to_json(),
        "started_at": first["started_at"],
        "detected_at": first["detected_at"],
        "summary": summary(recorded[0], "zh", registry),  # rendered, Chinese by default
    }
    assert datetime.fromisoformat(first["started_at"]) == recorded[0].started_at


async def test_summaries_in_the_language_asked(
    client: httpx.AsyncClient,
    recorded: list[Anomaly],
    registry: Registry,
    make_app: Callable[..., FastAPI],
) -> None:
    anomaly = recorded[0]
    url = f"/api/v1/anomalies/{anomaly.id}"
    zh = (await client.get(url, headers=VIEWER)).json()["summary"]
    en = (await client.get(url + "?lang=en", headers=VIEWER)).json()["summary"]
    by_header = await client.get(url, headers={**VIEWER, "Accept-Language": "en-GB,en;q=0.8"})
    assert zh == summary(anomaly, "zh", registry) and "禁行车辆" in zh
    assert en == summary(anomaly, "en", registry) and en != zh
    assert by_header.json()["summary"] == en
    ending = make_app(stream_max_s=0.3)  # a stream that ends, so that it can be read whole
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ending), base_url="http://api"
    ) as short:
        streamed = (
            await short.get("/api/v1/anomalies/stream?after=0&lang=en", headers=VIEWER)
        ).text
    assert json.dumps(en, ensure_ascii=False) in streamed


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"enterprise": "E1"}, lambda a: a.enterprise == "E1"),
        ({"type": "device_offline"}, lambda a: a.type == "device_offline"),
        ({"family": "post_shutdown"}, lambda a: a.family == "post_shutdown"),
        ({"family": "abnormal_operation"}, lambda a: a.family == "abnormal_operation"),
        ({"state": "closed"}, lambda a: a.state == "closed"),
        (
            {"state": "open", "enterprise": "E2"},
            lambda a: a.state == "open" and a.enterprise == "E2",
        ),
        ({"enterprise": "NOPE"}, lambda a: False),
    ],
)
async def test_filters(
    client: httpx.AsyncClient, recorded: list[Anomaly], params: dict[str, str], keep: object
) -> None:
    assert await ids(client, **params) == [a.id for a in recorded if keep(a)]  # type: ignore[operator]


async def test_since_until_select_overlapping_intervals(
    client: httpx.AsyncClient, recorded: list[Anomaly]
) -> None:
    since, until = T0 + 5 * H + H / 4, T0 + 9 * H
    expected = [
        a.id
        for a in recorded
        if a.started_at <= until and (a.ended_at is None or a.ended_at >= since)
    ]
    got = await ids(client, since=since.isoformat(), until=until.isoformat())
    assert got == expected
    # anomaly 3 (closed at 03:30) is out, anomaly 5 (open) is in
    assert recorded[-4].id not in got and recorded[-6].id in got


async def test_time_without_offset_is_beijing_time(
    client: httpx.AsyncClient, recorded: list[Anomaly]
) -> None:
    until = T0 + 2 * H  # T0 is +08:00
    naive = until.replace(tzinfo=None).isoformat()
    assert await ids(client, until=naive) == await ids(client, until=until.isoformat())
    assert len(await ids(client, until=naive)) == 3


async def test_paging(client: httpx.AsyncClient, recorded: list[Anomaly]) -> None:
    pages = []
    for offset in range(0, 24, 10):
        response = await client.get(
            "/api/v1/anomalies", params={"limit": 10, "offset": offset}, headers=VIEWER
        )
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (24, 10, offset)
        pages += [i["id"] for i in body["items"]]
    assert pages == [a.id for a in recorded]
    beyond = await client.get("/api/v1/anomalies", params={"offset": 500}, headers=VIEWER)
    assert beyond.json()["items"] == [] and beyond.json()["total"] == 24


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"state": "gone"},
        {"type": "over_limits"},
        {"family": "post-shutdown"},
        {"since": "yesterday"},
        {"until": "0001-01-01T00:00:00+14:00"},
    ],
)
async def test_bad_parameters_are_422(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    response = await client.get("/api/v1/anomalies", params=params, headers=VIEWER)  # type: ignore[arg-type]
    assert response.status_code == 422


async def test_one_by_id(client: httpx.AsyncClient, recorded: list[Anomaly]) -> None:
    target = recorded[3]
    response = await client.get(f"/api/v1/anomalies/{target.id}", headers=VIEWER)
    assert response.status_code == 200
    assert response.json()["id"] == target.id
    assert response.json()["state"] == target.state


async def test_unknown_id_is_404(client: httpx.AsyncClient, recorded: list[Anomaly]) -> None:
    response = await client.get("/api/v1/anomalies/0000000000", headers=VIEWER)
    assert response.status_code == 404
    assert "0000000000" in response.json()["detail"]


async def test_unknown_type_names_the_known_ones(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/anomalies", params={"type": "overlimit"}, headers=VIEWER)
    assert response.status_code == 422
    assert "unknown anomaly type 'overlimit'; one of auth_failure," in response.text


async def test_the_api_serves_the_list_in_order(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/anomaly-types", headers=VIEWER)
    assert reply.status_code == 200
    body = reply.json()
    assert [t["type"] for t in body] == [t.name for t in TYPES]
    assert body[0] == {
        "type": "device_offline",
        "family": "data_gaps",
        "severity": "warning",
        "rule": "device_offline",
        "charted": True,
    }
    assert (await client.get("/api/v1/anomaly-types")).status_code == 401
