"""Series for charts, read back from a real InfluxDB 1.x: a running gateway stores HJ 212
uploads (pollutants and meters), its rules open anomalies, and the API answers with the values
that explain them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.anomalies.store import AnomalyStore
from gateway.config import InfluxSection, load_config
from gateway.influx.reader import FluxReader, InfluxQLReader, SeriesQuery
from gateway.supervisor import Gateway
from tests.api.conftest import VIEWER, make_anomaly
from tests.conftest import MN_POWER, influx_rows, write_config
from tests.frames import MN_WATER, qn_for, upload

TOKENS = "series-viewer:viewer"
AUTH = {"Authorization": "Bearer series-viewer"}

REGISTRY = f"""
[[enterprises]]
id = "E1"
name = "Test plant"

  [[enterprises.outlets]]
  id = "DW001"
  mn = "{MN_WATER}"
  password = "123456"
  kind = "water"
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50, unit = "mg/L" }}

  [[enterprises.outlets]]
  id = "PWR1"
  mn = "{MN_POWER}"
  password = "123456"
  kind = "power"
  [enterprises.outlets.power_codes]
  d20405 = {{ meter = "PM1", quantity = "p_kw" }}
  d20406 = {{ meter = "TM1", quantity = "p_kw" }}

  [[enterprises.meters]]
  id = "PM1"
  role = "production"
  line = "L1"

  [[enterprises.meters]]
  id = "TM1"
  role = "treatment"
  line = "T1"
  on_threshold_kw = 5.0

  [[enterprises.facilities]]
  id = "T1"
  meters = ["TM1"]

  [[enterprises.lines]]
  id = "L1"
  treatment = [{{ facility = "T1" }}]
"""

# hourly w01018 means, Beijing time 2026-04-08 05:00 .. 10:00; limit 50: over at 07 and 08
HOURLY = [30.0, 40.0, 90.0, 75.0, 20.0, 25.0]
FIRST_HOUR = datetime(2026, 4, 8, 5)
# meter readings every 5 min from 2026-04-08 08:00 Beijing: production runs, treatment off
# until 08:25 (grace 15 min: treatment_not_running from 08:00 to 08:25)
POWER = [(500.0, 0.0), (510.0, 0.0), (505.0, 0.0), (498.0, 0.0), (502.0, 0.0), (500.0, 300.0)]
FIRST_READING = datetime(2026, 4, 8, 8)


def utc(text: str) -> str:
    """How the API writes a UTC time."""
    return datetime.fromisoformat(text).astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Plant:
    gateway: Gateway
    base: str
    database: str
    influx_url: str


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.1)
    assert check(), what


@pytest.fixture
async def plant(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Plant]:
    monkeypatch.setenv("TEST_GATEWAY_API_TOKENS", TOKENS)
    path = write_config(tmp_path / "gw", influx.url, database, registry=REGISTRY)
    gw = Gateway(load_config(path))
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
        for i, value in enumerate(HOURLY):
            hour = FIRST_HOUR + timedelta(hours=i)
            await dev.send(upload(qn=qn_for(i), data_time=hour, values={"w01018": value}))
            await dev.read_frame()
        for i, (production, treatment) in enumerate(POWER):
            moment = FIRST_READING + timedelta(minutes=5 * i)
            frame = upload(
                mn=MN_POWER,
                cn="2011",
                st="44",
                qn=qn_for(100 + i),
                data_time=moment,
                values={"d20405": production, "d20406": treatment},
            )
            await dev.send(frame)
            await dev.read_frame()
        await dev.send(upload(pw="wrong", qn=qn_for(200)))
        await dev.close()
        assert gw.anomalies is not None and gw.api is not None
        store = gw.anomalies

        def stored() -> bool:
            closed = {a.type for a in store.query(state="closed", limit=50)[0]}
            rows = influx_rows(influx.url, database, "SELECT count(*) FROM emission, power")
            counts = sorted(int(r.get("count_avg") or r.get("count_p_kw") or 0) for r in rows)
            return {"over_limit", "treatment_not_running"} <= closed and counts == [6, 12]

        await wait_for(stored, "anomalies closed and every point in InfluxDB")
        yield Plant(gw, f"http://127.0.0.1:{gw.api.port}", database, influx.url)
    finally:
        await gw.shutdown()


def only(store: AnomalyStore | None, type_: str) -> str:
    assert store is not None
    items, total = store.query(type_=type_)
    assert total == 1, [a.summary for a in items]
    return items[0].id


async def get(plant: Plant, path: str, **params: Any) -> httpx.Response:
    """A GET in English (`lang=en`, unless `params` says otherwise): labels asserted below."""
    params.setdefault("lang", "en")
    async with httpx.AsyncClient(base_url=plant.base, headers=AUTH, trust_env=False) as client:
        return await client.get(path, params=params)


async def test_over_limit_series_is_the_outlet_hourly_means_with_the_limit(plant: Plant) -> None:
    anomaly_id = only(plant.gateway.anomalies, "over_limit")
    reply = await get(plant, f"/api/v1/anomalies/{anomaly_id}/series")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["type"] == "over_limit" and body["note"] is None
    assert body["started_at"] == "2026-04-07T23:00:00Z"  # 07:00 Beijing
    assert body["ended_at"] == "2026-04-08T01:00:00Z"  # the end of the last hour over
    assert body["window"] == {"start": "2026-04-07T17:00:00Z", "end": "2026-04-08T03:00:00Z"}
    [series] = body["series"]
    assert series["measurement"] == "emission" and series["field"] == "avg"
    assert series["tags"] == {
        "enterprise": "E1",
        "outlet": "DW001",
        "pollutant": "w01018",
        "interval": "hour",
    }
    assert series["label"] == "DW001 w01018 hourly mean"
    zh = (await get(plant, f"/api/v1/anomalies/{anomaly_id}/series", lang="zh")).json()
    assert zh["series"][0]["label"] == "DW001 化学需氧量(w01018) 小时均值"
    assert zh["series"][0]["limit_label"] == "限值 50 mg/L"
    assert (series["unit"], series["limit"], series["limit_label"]) == (
        "mg/L",
        50.0,
        "limit 50 mg/L",
    )
    assert series["bucket_s"] is None
    hours = [utc(f"{FIRST_HOUR + timedelta(hours=i):%Y-%m-%dT%H:%M}+08:00") for i in range(6)]
    assert series["points"] == [[t, v] for t, v in zip(hours, HOURLY, strict=True)]


async def test_suspicious_data_series_are_each_affected_series_of_the_outlet(
    plant: Plant,
) -> None:
    """One anomaly per outlet and pattern: its chart has a line per series in its evidence."""
    store = plant.gateway.anomalies
    assert store is not None
    start = datetime(2026, 4, 8, 6, tzinfo=UTC) - timedelta(hours=8)
    base = make_anomaly(type_="suspicious_data", subject="outlet:E1/DW001:constant")
    series = [
        {"pollutant": "w01018", "code_sent": "w01018", "interval": "hour", "value": 40.0},
        {"pollutant": "w21003", "code_sent": "w21003", "interval": "hour", "value": 1.0},
    ]
    anomaly = replace(base, started_at=start, evidence={"outlet": "DW001", "series": series})
    store.record(replace(anomaly, id=""))
    anomaly_id = store.query(type_="suspicious_data")[0][0].id
    body = (await get(plant, f"/api/v1/anomalies/{anomaly_id}/series")).json()
    cod, ammonia = body["series"]
    assert (cod["tags"]["pollutant"], ammonia["tags"]["pollutant"]) == ("w01018", "w21003")
    assert cod["label"] == "DW001 w01018 hourly mean" and cod["limit"] == 50.0
    # the window: 2 h before the start (06:00 Beijing) to 1 h after it
    assert [v for _, v in cod["points"]] == HOURLY[:2]
    assert ammonia["points"] == []  # nothing stored for it


async def test_treatment_not_running_series_is_the_power_of_the_line_meters(plant: Plant) -> None:
    anomaly_id = only(plant.gateway.anomalies, "treatment_not_running")
    body = (await get(plant, f"/api/v1/anomalies/{anomaly_id}/series")).json()
    assert (body["started_at"], body["ended_at"]) == (
        "2026-04-08T00:00:00Z",
        "2026-04-08T00:25:00Z",
    )
    assert body["window"] == {"start": "2026-04-07T22:00:00Z", "end": "2026-04-08T01:25:00Z"}
    production, treatment = body["series"]
    times = [f"2026-04-08T00:{5 * i:02d}:00Z" for i in range(6)]
    assert production["tags"] == {"enterprise": "E1", "meter": "PM1"}
    assert production["label"] == "PM1 (production, line L1) p_kw"
    assert (production["field"], production["unit"], production["limit"]) == ("p_kw", "kW", 1.0)
    assert production["points"] == [[t, p] for t, (p, _) in zip(times, POWER, strict=True)]
    assert treatment["tags"] == {"enterprise": "E1", "meter": "TM1"}
    assert (treatment["limit"], treatment["limit_label"]) == (5.0, "TM1 runs from 5 kW")
    assert treatment["points"] == [[t, w] for t, (_, w) in zip(times, POWER, strict=True)]


async def test_types_without_values_unknown_ids_and_tokens(plant: Plant) -> None:
    anomaly_id = only(plant.gateway.anomalies, "auth_failure")
    body = (await get(plant, f"/api/v1/anomalies/{anomaly_id}/series")).json()
    assert body["series"] == [] and body["note"] == "no values to chart for this type"
    assert (await get(plant, "/api/v1/anomalies/nope/series")).status_code == 404
    async with httpx.AsyncClient(base_url=plant.base, trust_env=False) as client:
        over = only(plant.gateway.anomalies, "over_limit")
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            for path in (f"/api/v1/anomalies/{over}/series", "/api/v1/series?enterprise=E1"):
                reply = await client.get(path, headers=headers)
                assert reply.status_code == 401, (path, headers)


async def test_generic_series_of_an_outlet_and_of_a_meter(plant: Plant) -> None:
    window = {"start": "2026-04-08T06:00:00", "end": "2026-04-08T09:00:00"}  # Beijing
    reply = await get(
        plant, "/api/v1/series", enterprise="E1", outlet="DW001", pollutant="w01018", **window
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["window"] == {"start": "2026-04-07T22:00:00Z", "end": "2026-04-08T01:00:00Z"}
    [series] = body["series"]
    assert [v for _, v in series["points"]] == HOURLY[1:4]  # 06, 07, 08; the end is exclusive
    assert series["limit"] == 50.0
    reply = await get(
        plant,
        "/api/v1/series",
        enterprise="E1",
        meter="TM1",
        start="2026-04-08T08:20:00+08:00",
        end="2026-04-08T09:00:00+08:00",
    )
    [series] = reply.json()["series"]
    assert series["points"] == [["2026-04-08T00:20:00Z", 0.0], ["2026-04-08T00:25:00Z", 300.0]]
    # default: the last 24 h up to now (nothing stored then)
    reply = await get(plant, "/api/v1/series", enterprise="E1", meter="PM1")
    window = reply.json()["window"]
    start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
    assert end - start == timedelta(hours=24)
    assert abs(end - datetime.now(UTC)) < timedelta(minutes=1)
    assert reply.json()["series"][0]["points"] == []


async def test_generic_series_refuses_what_does_not_name_one_series(plant: Plant) -> None:
    both = await get(plant, "/api/v1/series", enterprise="E1", outlet="DW001", meter="PM1")
    assert both.status_code == 400
    no_pollutant = await get(plant, "/api/v1/series", enterprise="E1", outlet="DW001")
    assert no_pollutant.status_code == 400
    backwards = await get(
        plant,
        "/api/v1/series",
        enterprise="E1",
        meter="PM1",
        start="2026-04-08T09:00:00",
        end="2026-04-08T08:00:00",
    )
    assert backwards.status_code == 400
    ancient = await get(plant, "/api/v1/series", enterprise="E1", meter="PM1", start="1500-01-01")
    assert ancient.status_code == 400
    for params in (
        {"enterprise": "E9", "meter": "PM1"},
        {"enterprise": "E1", "meter": "PM9"},
        {"enterprise": "E1", "outlet": "DW009", "pollutant": "w01018"},
    ):
        assert (await get(plant, "/api/v1/series", **params)).status_code == 404, params
    wrong_field = await get(plant, "/api/v1/series", enterprise="E1", meter="PM1", field="avg")
    assert wrong_field.status_code == 400
    quote = await get(plant, "/api/v1/series", enterprise="E1", outlet="DW001", pollutant="w0'1\"8")
    assert quote.status_code == 422


def power_query(**overrides: Any) -> SeriesQuery:
    values: dict[str, Any] = {
        "measurement": "power",
        "field": "p_kw",
        "tags": {"enterprise": "E1", "meter": "PM1"},
        "start": datetime(2026, 4, 8, tzinfo=UTC),
        "end": datetime(2026, 4, 8, 1, tzinfo=UTC),
    }
    values.update(overrides)
    return SeriesQuery(**values)


async def test_long_series_are_read_as_bucket_means(plant: Plant) -> None:
    reader = InfluxQLReader(plant.influx_url, plant.database)
    [[series]] = await reader.read([power_query(max_points=2)])
    assert series.bucket_s == 1800  # one hour in 2 buckets
    assert [(t.isoformat(), v) for t, v in series.points] == [
        ("2026-04-08T00:00:00+00:00", sum(p for p, _ in POWER) / 6)
    ]


async def test_inlined_literals_and_a_token_as_for_influxdb_3(plant: Plant) -> None:
    """The 3.x form (values inlined as escaped literals, `Authorization: Token`), here against
    1.x, which accepts it with authentication off."""
    reader = InfluxQLReader(plant.influx_url, plant.database, token="t0ken", bind_parameters=False)
    sneaky = {"enterprise": "E1' OR meter = 'TM1", "meter": "PM1"}
    [[series], hostile] = await reader.read([power_query(), power_query(tags=sneaky)])
    assert [v for _, v in series.points] == [p for p, _ in POWER]
    assert hostile == []
    text, params = reader.statement(power_query(tags=sneaky), None)
    assert "'E1\\' OR meter = \\'TM1'" in text and params == {}
    text, params = InfluxQLReader("http://x", "db").statement(power_query(tags=sneaky), None)
    assert "E1'" not in text and params["t0_0"] == sneaky["enterprise"]


async def test_unreachable_influxdb_answers_503(
    make_app: Callable[..., FastAPI], store: AnomalyStore
) -> None:
    store.record(make_anomaly(subject="outlet:E1/DA001/a21026"))
    anomaly_id = store.query()[0][0].id
    down = InfluxSection(url=f"http://127.0.0.1:{localstack.free_port()}", database="x")
    for app in (make_app(influx=down), make_app()):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            reply = await client.get(f"/api/v1/anomalies/{anomaly_id}/series", headers=VIEWER)
            assert reply.status_code == 503
            assert "InfluxDB" in reply.json()["detail"]


FLUX_CSV = """#datatype,string,long,dateTime:RFC3339,double,string
#group,false,false,false,false,true
#default,_result,,,,
,result,table,_time,_value,meter
,,0,2026-04-08T00:00:00Z,500,PM1
,,0,2026-04-08T00:05:00Z,510,PM1

"""


async def test_flux_reader_sends_parameters_as_extern_options() -> None:
    """InfluxDB 2.x is not packaged for this platform: a small HTTP server speaking the
    ``/api/v2/query`` contract stands in, as for the 2.x sink."""
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def query(request: web.Request) -> web.Response:
        seen.append((dict(request.query), json.loads(await request.read())))
        return web.Response(text=FLUX_CSV, content_type="text/csv")

    app = web.Application()
    app.router.add_post("/api/v2/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = localstack.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        reader = FluxReader(f"http://127.0.0.1:{port}", org="bureau", bucket="b", token="t")
        [[series]] = await reader.read([power_query(group_by="meter")])
    finally:
        await runner.cleanup()
    assert series.group == "PM1"
    assert [(t.isoformat(), v) for t, v in series.points] == [
        ("2026-04-08T00:00:00+00:00", 500.0),
        ("2026-04-08T00:05:00+00:00", 510.0),
    ]
    args, body = seen[0]
    assert args == {"org": "bureau"}
    assert "r.enterprise == p_t0_0" in body["query"] and "E1" not in body["query"]
    options = {
        s["assignment"]["id"]["name"]: s["assignment"]["init"] for s in body["extern"]["body"]
    }
    assert options["p_t0_0"] == {"type": "StringLiteral", "value": "E1"}
    assert options["p_bucket"]["value"] == "b"
    assert options["p_start"] == {
        "type": "DateTimeLiteral",
        "value": "2026-04-08T00:00:00.000000000Z",
    }
