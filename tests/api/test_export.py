"""Exports: the anomaly list and a series as CSV for Excel (BOM, Chinese headers, Beijing time),
and the evidence pack of one anomaly as a ZIP, on real SQLite stores and a real InfluxDB 1.x."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from devkit import localstack
from gateway.accounts import Accounts, token_hash
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app, export
from gateway.api.series import NOTHING_TO_CHART
from gateway.config import InfluxSection
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import T0, VIEWER, make_anomaly
from tests.api.test_scope import ACCOUNTS, _accounts_toml, auth
from tests.api.test_scope import REGISTRY as SCOPED_REGISTRY

BOM = b"\xef\xbb\xbf"
SVG = "{http://www.w3.org/2000/svg}"
H = timedelta(hours=1)
MIDNIGHT_UTC = datetime(2025, 1, 10, tzinfo=UTC)  # 08:00 Beijing time
OUTLET = "outlet:E1/DA001/a21026"
# hourly a21026 means at DA001 of E1, 21:00 UTC .. 03:00 UTC (05:00 .. 11:00 Beijing)
HOURLY = [8.0, 9.5, 12.5, 14.0, 11.0, 7.0]
FIRST_HOUR = MIDNIGHT_UTC - 3 * H
# p_kw of meter PM1 of E1 every 10 min from 00:00 UTC
POWER = [500.0, 510.0, 0.0, -1.5, 498.25]
EVIDENCE = {
    "outlet": "DA001",
    "pollutant": "a21026",
    "interval": "hour",
    "limit": 10.0,
    "unit": "mg/m³",
    "hours": [
        {"hour": "2025-01-10T00:00:00+00:00", "avg": 12.5},
        {"hour": "2025-01-10T01:00:00+00:00", "avg": 14.0},
    ],
    "window": {"from": "2025-01-10T00:00:00+00:00", "hours": 2},
}
ZH_HEADER = [
    "编号",
    "类型",
    "类别",
    "级别",
    "状态",
    "企业",
    "企业名称",
    "对象",
    "开始时间(北京时间)",
    "结束时间(北京时间)",
    "发现时间(北京时间)",
    "摘要",
    "证据",
    "规则",
]


def rows_of(reply: httpx.Response) -> list[list[str]]:
    """The rows of a CSV reply, checking it is UTF-8 with a BOM."""
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.content.startswith(BOM)
    return list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"), newline="")))


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def over_limit(started_at: datetime = MIDNIGHT_UTC, **evidence: Any) -> Anomaly:
    anomaly = make_anomaly(subject=OUTLET, started_at=started_at)
    return replace(anomaly, evidence={**EVIDENCE, **evidence}).closed(started_at + 2 * H)


@pytest.fixture
def recorded(store: AnomalyStore) -> list[Anomaly]:
    """12 anomalies over E1 and E2 and three types, one starting every hour from 00:00 UTC;
    every third one closed. Newest first, as the list orders them."""
    types = ["over_limit", "device_offline", "treatment_not_running"]
    out = []
    for i in range(12):
        a = make_anomaly(
            type_=types[i % 3],
            enterprise="E1" if i % 2 == 0 else "E2",
            subject=f"mn:MN{i:04d}",
            started_at=MIDNIGHT_UTC + i * H,
            ended_at=MIDNIGHT_UTC + i * H + H / 2 if i % 3 == 0 else None,
        )
        assert store.record(a) is not None
        out.append(a)
    return sorted(out, key=lambda a: a.started_at, reverse=True)


# -- the anomaly list as CSV ----------------------------------------------------------------


async def test_anomaly_csv_is_utf8_with_bom_chinese_and_in_beijing_time(
    client: httpx.AsyncClient, store: AnomalyStore, registry: Registry
) -> None:
    anomaly = make_anomaly(subject=OUTLET, started_at=MIDNIGHT_UTC, ended_at=MIDNIGHT_UTC + 2 * H)
    store.record(anomaly)
    reply = await client.get("/api/v1/export/anomalies.csv", headers=VIEWER)
    header, row = rows_of(reply)
    assert header == ZH_HEADER
    assert reply.headers["content-disposition"] == (
        'attachment; filename="anomalies-20250110-0800.csv"'  # the API's clock, Beijing time
    )
    assert reply.headers["x-total-count"] == "1" and "x-truncated" not in reply.headers
    cells = dict(zip(header, row, strict=True))
    labels = export._labels()
    assert cells["编号"] == anomaly.id
    assert cells["类型"] == labels.type_label("over_limit", "zh") and is_chinese(cells["类型"])
    assert cells["级别"] == labels.severity_label("alarm", "zh") and is_chinese(cells["级别"])
    assert cells["状态"] == labels.state_label("closed", "zh") and is_chinese(cells["状态"])
    assert (cells["企业"], cells["企业名称"], cells["对象"]) == ("E1", "Steel works", OUTLET)
    assert cells["开始时间(北京时间)"] == "2025-01-10 08:00:00"  # 00:00 UTC
    assert cells["结束时间(北京时间)"] == "2025-01-10 10:00:00"
    assert cells["发现时间(北京时间)"] == "2025-01-10 08:01:00"
    closed = anomaly.closed(MIDNIGHT_UTC + 2 * H)
    assert cells["摘要"] == labels.summary(closed, lang="zh", registry=registry)
    assert is_chinese(cells["摘要"])
    assert json.loads(cells["证据"]) == anomaly.evidence
    assert cells["规则"] == "over_limit"


async def test_anomaly_csv_in_english(client: httpx.AsyncClient, store: AnomalyStore) -> None:
    store.record(make_anomaly(started_at=MIDNIGHT_UTC))
    header, row = rows_of(await client.get("/api/v1/export/anomalies.csv?lang=en", headers=VIEWER))
    assert header[:3] == ["id", "type", "family"]
    assert "started (Beijing time)" in header
    cells = dict(zip(header, row, strict=True))
    labels = export._labels()
    assert cells["type"] == labels.type_label("over_limit", "en")
    assert not is_chinese(cells["type"] + cells["severity"] + cells["state"])
    assert cells["ended (Beijing time)"] == ""  # still open
    assert cells["started (Beijing time)"] == "2025-01-10 08:00:00"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"enterprise": "E2"},
        {"type": "device_offline"},
        {"family": "abnormal_operation"},
        {"state": "closed"},
        {"state": "open", "enterprise": "E1"},
        {"since": "2025-01-10T14:00:00", "until": "2025-01-10T16:00:00"},  # Beijing time
        {"since": "2025-01-10T06:00:00Z", "type": "over_limit"},
        {"enterprise": "E9"},
    ],
)
async def test_anomaly_csv_rows_are_the_list_with_the_same_filters(
    client: httpx.AsyncClient, recorded: list[Anomaly], params: dict[str, str]
) -> None:
    listed = await client.get("/api/v1/anomalies", params={**params, "limit": 1000}, headers=VIEWER)
    expected = [item["id"] for item in listed.json()["items"]]
    reply = await client.get("/api/v1/export/anomalies.csv", params=params, headers=VIEWER)
    header, *rows = rows_of(reply)
    assert header == ZH_HEADER
    assert [r[0] for r in rows] == expected
    assert reply.headers["x-total-count"] == str(len(expected))
    by_id = {a.id: a for a in recorded}
    for row in rows:
        assert row[6] == {"E1": "Steel works", "E2": "Cement plant"}[row[5]]
        assert by_id[row[0]].enterprise == row[5]


async def test_anomaly_csv_is_bounded_and_says_so(
    client: httpx.AsyncClient, recorded: list[Anomaly], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "MAX_ROWS", 5)
    monkeypatch.setattr(export, "PAGE_ROWS", 2)  # read in pages
    reply = await client.get("/api/v1/export/anomalies.csv", headers=VIEWER)
    _, *rows = rows_of(reply)
    assert [r[0] for r in rows] == [a.id for a in recorded[:5]]
    assert reply.headers["x-truncated"] == "true" and reply.headers["x-total-count"] == "12"
    reply = await client.get("/api/v1/export/anomalies.csv?enterprise=E1", headers=VIEWER)
    _, *rows = rows_of(reply)
    assert [r[0] for r in rows] == [a.id for a in recorded if a.enterprise == "E1"][:5]
    assert reply.headers["x-truncated"] == "true" and reply.headers["x-total-count"] == "6"
    reply = await client.get("/api/v1/export/anomalies.csv?state=closed", headers=VIEWER)
    _, *rows = rows_of(reply)
    assert len(rows) == 4 and "x-truncated" not in reply.headers


async def test_anomaly_csv_defuses_cells_excel_would_run(
    client: httpx.AsyncClient, store: AnomalyStore
) -> None:
    store.record(make_anomaly(type_="unregistered_device", enterprise="", subject="=1+2"))
    _, row = rows_of(await client.get("/api/v1/export/anomalies.csv", headers=VIEWER))
    assert row[7] == "'=1+2"


async def test_exports_need_a_token(client: httpx.AsyncClient, store: AnomalyStore) -> None:
    anomaly = make_anomaly()
    store.record(anomaly)
    for path in (
        "/api/v1/export/anomalies.csv",
        "/api/v1/export/series.csv?enterprise=E1&meter=PM1",
        f"/api/v1/anomalies/{anomaly.id}/evidence.zip",
    ):
        assert (await client.get(path)).status_code == 401, path
        reply = await client.get(path, headers={"Authorization": "Bearer wrong"})
        assert reply.status_code == 401, path


# -- scope ----------------------------------------------------------------------------------


@pytest.fixture
async def scoped(
    store: AnomalyStore, regime: Regime, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "accounts.toml"
    path.write_text(_accounts_toml(ACCOUNTS), encoding="utf-8")
    registry = Registry(RegistryFile.model_validate(SCOPED_REGISTRY))
    app = create_app(
        store=store,
        regime=regime,
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        accounts=Accounts(path),
        clock=lambda: T0,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def test_exports_hold_only_the_scope(scoped: httpx.AsyncClient, store: AnomalyStore) -> None:
    """`county` sees E1 only, `city` E1 and E2."""
    recorded = {}
    for ent in ("E1", "E2", "E3"):
        recorded[ent] = make_anomaly(enterprise=ent, subject=f"outlet:{ent}/DA001/a21026")
        store.record(recorded[ent])
    for who, sees in (("county", {"E1"}), ("city", {"E1", "E2"}), ("admin", {"E1", "E2", "E3"})):
        _, *rows = rows_of(await scoped.get("/api/v1/export/anomalies.csv", headers=auth(who)))
        assert {r[5] for r in rows} == sees, who
        for ent, anomaly in recorded.items():
            _, *rows = rows_of(
                await scoped.get(
                    f"/api/v1/export/anomalies.csv?enterprise={ent}", headers=auth(who)
                )
            )
            assert len(rows) == (1 if ent in sees else 0), (who, ent)
            pack = await scoped.get(
                f"/api/v1/anomalies/{anomaly.id}/evidence.zip", headers=auth(who)
            )
            assert pack.status_code == (200 if ent in sees else 404), (who, ent)
            series = await scoped.get(
                f"/api/v1/export/series.csv?enterprise={ent}&meter=PM1", headers=auth(who)
            )
            assert series.status_code == (503 if ent in sees else 404), (who, ent)  # no InfluxDB
    pack = await scoped.get(
        f"/api/v1/anomalies/{recorded['E1'].id}/evidence.zip", headers=auth("county")
    )
    html = zipfile.ZipFile(io.BytesIO(pack.content)).read("summary.html").decode()
    assert "county" in html  # the account that made it
    missing = await scoped.get("/api/v1/anomalies/nope/evidence.zip", headers=auth("admin"))
    assert missing.status_code == 404


# -- with a real InfluxDB -------------------------------------------------------------------


def _write(url: str, database: str, lines: list[str]) -> None:
    request = urllib.request.Request(
        f"{url}/write?db={database}&precision=s", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 204


@pytest.fixture
def stored(influx: localstack.ManagedProcess, database: str) -> InfluxSection:
    """HOURLY and POWER in a fresh database; the section the API reads it with."""
    localstack.create_database(influx.url, database)
    tags = "enterprise=E1,outlet=DA001,pollutant=a21026,interval=hour"
    lines = [
        f"emission,{tags} avg={v} {int((FIRST_HOUR + i * H).timestamp())}"
        for i, v in enumerate(HOURLY)
    ]
    lines += [
        f"power,enterprise=E1,meter=PM1 p_kw={v} {int((MIDNIGHT_UTC + i * H / 6).timestamp())}"
        for i, v in enumerate(POWER)
    ]
    _write(influx.url, database, lines)
    for measurement, field, count in (("emission", "avg", HOURLY), ("power", "p_kw", POWER)):
        found = localstack.query(influx.url, database, f"SELECT count({field}) FROM {measurement}")
        assert found["results"][0]["series"][0]["values"][0][1] == len(count)
    return InfluxSection(url=influx.url, database=database)


@pytest.fixture
async def charted(
    make_app: Callable[..., FastAPI], stored: InfluxSection, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API reading `stored`, for an account with a display name."""
    path = tmp_path / "accounts.toml"
    path.write_text(
        "[[accounts]]\nname = 'zhangsan'\ndisplay_name = '张三 (虎丘区执法大队)'\n"
        f"role = 'officer'\ntoken_sha256 = '{token_hash('zhangsan-token')}'\n"
        "all_regions = true\n",
        encoding="utf-8",
    )
    app = make_app(influx=stored, accounts=Accounts(path), tokens=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://api",
        headers={"Authorization": "Bearer zhangsan-token"},
    ) as c:
        yield c


def beijing_hours() -> list[str]:
    return [f"{(FIRST_HOUR + i * H + 8 * H):%Y-%m-%d %H:%M:%S}" for i in range(len(HOURLY))]


async def test_series_csv_holds_the_stored_values(charted: httpx.AsyncClient) -> None:
    params = {
        "enterprise": "E1",
        "outlet": "DA001",
        "pollutant": "a21026",
        "start": "2025-01-10T00:00:00",  # Beijing time
        "end": "2025-01-10T12:00:00",
    }
    reply = await charted.get("/api/v1/export/series.csv", params=params)
    header, *rows = rows_of(reply)
    assert header == ["时间(北京时间)", "值", "单位", "系列"]
    assert [r[0] for r in rows] == beijing_hours()  # 21:00 UTC is 05:00 Beijing
    assert [float(r[1]) for r in rows] == HOURLY
    [label] = {r[3] for r in rows}
    assert label == "DA001 二氧化硫(a21026) 小时均值"
    disposition = reply.headers["content-disposition"]
    assert disposition == 'attachment; filename="series-E1-DA001-a21026-20250110-0800.csv"'
    # the same values as the JSON route
    same = (await charted.get("/api/v1/series", params=params)).json()
    assert [v for _, v in same["series"][0]["points"]] == [float(r[1]) for r in rows]

    meter = {
        "enterprise": "E1",
        "meter": "PM1",
        "start": "2025-01-10T08:00:00+08:00",
        "end": "2025-01-10T09:00:00+08:00",
    }
    reply = await charted.get("/api/v1/export/series.csv", params={**meter, "lang": "en"})
    header, *rows = rows_of(reply)
    assert header == ["time (Beijing time)", "value", "unit", "series"]
    assert [float(r[1]) for r in rows] == POWER
    assert rows[0][0] == "2025-01-10 08:00:00" and rows[1][0] == "2025-01-10 08:10:00"
    assert {r[2] for r in rows} == {"kW"}
    assert rows[3][1] == "-1.5"  # a number, not a defused formula


async def test_series_csv_checks_as_the_series_route(charted: httpx.AsyncClient) -> None:
    for params, code in (
        ({"enterprise": "E1", "outlet": "DA001", "meter": "PM1"}, 400),
        ({"enterprise": "E1", "outlet": "DA001"}, 400),
        ({"enterprise": "E9", "meter": "PM1"}, 404),
        ({"enterprise": "E1", "meter": "PM9"}, 404),
        ({"enterprise": "E1", "meter": "PM1", "max_points": "1"}, 422),
    ):
        csv_reply = await charted.get("/api/v1/export/series.csv", params=params)
        json_reply = await charted.get("/api/v1/series", params=params)
        assert csv_reply.status_code == json_reply.status_code == code, params
        assert csv_reply.json() == json_reply.json()


async def test_evidence_pack_holds_every_file(
    charted: httpx.AsyncClient, store: AnomalyStore, registry: Registry
) -> None:
    opened = replace(make_anomaly(subject=OUTLET, started_at=MIDNIGHT_UTC), evidence=EVIDENCE)
    store.record(opened)
    anomaly = over_limit()
    store.record(anomaly)
    reply = await charted.get(f"/api/v1/anomalies/{anomaly.id}/evidence.zip")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/zip"
    assert reply.headers["content-disposition"] == (
        f'attachment; filename="evidence-{anomaly.id}-20250110-0800.zip"'
    )
    pack = zipfile.ZipFile(io.BytesIO(reply.content))
    assert pack.testzip() is None
    assert sorted(pack.namelist()) == [
        "SHA256SUMS",
        "anomaly.json",
        "chart.svg",
        "history.json",
        "series-1.csv",
        "summary.html",
    ]
    for line in pack.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256(pack.read(name)).hexdigest() == digest, name

    # the anomaly as the API answers it, and every recorded version
    one = await charted.get(f"/api/v1/anomalies/{anomaly.id}")
    assert json.loads(pack.read("anomaly.json")) == one.json()
    history = json.loads(pack.read("history.json"))
    assert [(e["event"], e["anomaly"]["state"]) for e in history] == [
        ("opened", "open"),
        ("closed", "closed"),
    ]
    assert history[0]["seq"] < history[1]["seq"] and history[1]["anomaly"] == one.json()
    assert [e.seq for e in store.events_of(anomaly.id)] == [e["seq"] for e in history]

    # the series, as the series CSV: the stored values in the window around the anomaly
    data = pack.read("series-1.csv")
    assert data.startswith(BOM)
    header, *rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    assert header == ["时间(北京时间)", "值", "单位", "系列"]
    assert [r[0] for r in rows] == beijing_hours()
    assert [float(r[1]) for r in rows] == HOURLY
    assert {r[2] for r in rows} == {"mg/m³"}

    # the chart: XML, a line per series, the limit dashed, the anomaly shaded, Beijing time
    chart = ET.fromstring(pack.read("chart.svg"))
    assert chart.tag == f"{SVG}svg"
    assert len(chart.findall(f"{SVG}polyline")) == 1
    assert any(line.get("stroke-dasharray") for line in chart.iter(f"{SVG}line"))
    assert any(r.get("fill-opacity") for r in chart.iter(f"{SVG}rect"))
    texts = [t.text or "" for t in chart.iter(f"{SVG}text")]
    assert "时间(北京时间)" in texts and "限值 10 mg/m³" in texts
    # the window 02:00 .. 12:00 Beijing (18:00 .. 04:00 UTC): ticks every 2 h from 02:00
    assert [t for t in texts if t.endswith(":00")] == [f"{h:02d}:00" for h in range(2, 13, 2)]

    # the summary page
    html = pack.read("summary.html").decode()
    assert html.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in html
    labels = export._labels()
    assert labels.type_label("over_limit", "zh") in html and "Steel works" in html
    assert labels.severity_label("alarm", "zh") in html
    assert labels.state_label("closed", "zh") in html
    assert "开始时间(北京时间)" in html and "2025-01-10 08:00:00" in html
    assert "结束时间(北京时间)" in html and "2025-01-10 10:00:00" in html
    assert escape(labels.summary(anomaly, lang="zh", registry=registry)) in html
    assert '<table class="grid">' in html  # the hours of the evidence, as a sub-table
    assert '<table class="kv">' in html  # the window, a dict in the evidence
    assert "<svg" in html and 'stroke-dasharray="6 4"' in html  # the chart inline
    assert "生成时间(北京时间): 2025-01-10 08:00:00" in html
    assert "张三 (虎丘区执法大队) (zhangsan)" in html


async def test_evidence_pack_without_influxdb_still_comes_with_a_note(
    make_app: Callable[..., FastAPI], store: AnomalyStore
) -> None:
    anomaly = over_limit()
    store.record(anomaly)
    down = InfluxSection(url=f"http://127.0.0.1:{localstack.free_port()}", database="x")
    for app in (make_app(influx=down), make_app()):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            reply = await client.get(f"/api/v1/anomalies/{anomaly.id}/evidence.zip", headers=VIEWER)
            assert reply.status_code == 200, reply.text
            pack = zipfile.ZipFile(io.BytesIO(reply.content))
            assert sorted(pack.namelist()) == [
                "SHA256SUMS",
                "anomaly.json",
                "history.json",
                "series-note.txt",
                "summary.html",
            ]
            note = pack.read("series-note.txt").decode()
            assert "InfluxDB" in note and is_chinese(note)
            html = pack.read("summary.html").decode()
            assert escape(note.strip()) in html and "北京时间" in html
            chart = await client.get(f"/api/v1/anomalies/{anomaly.id}/series", headers=VIEWER)
            assert chart.status_code == 503  # what the pack did without


async def test_evidence_pack_of_a_type_without_values(
    charted: httpx.AsyncClient, store: AnomalyStore
) -> None:
    anomaly = make_anomaly(type_="auth_failure", subject="mn:MN0001", started_at=MIDNIGHT_UTC)
    store.record(anomaly)
    reply = await charted.get(f"/api/v1/anomalies/{anomaly.id}/evidence.zip?lang=en")
    pack = zipfile.ZipFile(io.BytesIO(reply.content))
    assert "chart.svg" not in pack.namelist() and "series-1.csv" not in pack.namelist()
    assert pack.read("series-note.txt").decode().strip() == NOTHING_TO_CHART
    html = pack.read("summary.html").decode()
    assert '<html lang="en">' in html and "Beijing time" in html
