"""Heavy users (用车大户) and the clean-transport share, from gate records in a real InfluxDB:
exact on a fixture month, through the figures, the monthly report and the enterprise API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.mqtt.convert import gate_point
from adapters.mqtt.payloads import GatePayload
from devkit import localstack
from gateway.accounts import Accounts
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.cases.store import CaseStore
from gateway.config import InfluxSection
from gateway.influx.reader import InfluxQLReader
from gateway.model import Point
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from gateway.reports import transport
from gateway.reports.passages import heavy_passages, statement
from tests.api.conftest import accounts_toml
from tests.reports.helpers import CST, write_points

NOW = datetime(2026, 3, 11, 9, 0, tzinfo=CST)
TOKEN = "chief-token-0123456789"
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {"id": "E1", "name": "东城钢铁", "region": "C1", "gates": [{"id": "G1"}]},
                {
                    "id": "E2",
                    "name": "西城焦化",
                    "region": "C2",
                    "gates": [{"id": "G1"}],
                    "heavy_user_movements": 3,
                },
                {"id": "E3", "name": "无门禁企业", "region": "C2"},
            ]
        }
    )
)


def gate(ent: str, at: str, direction: str, plate: str, stage: str, **more: str) -> list[Point]:
    """A passage as the MQTT adapter stores it, and the `allowed` verdict the rule writes."""
    raw = {"time": at + "+08:00", "direction": direction, "plate": plate}
    raw |= {"emission_stage": stage, "fuel": "柴油", "vehicle_class": "重型货车", **more}
    point = gate_point(ent, "G1", GatePayload.model_validate(raw))
    return [point, Point(point.measurement, point.tags, (("allowed", True),), point.event_time_ns)]


def fixture_points() -> list[Point]:
    out: list[Point] = []
    # E1, 2026-03-10: 6 heavy in (2 国六, 1 electric, 3 国五), 5 heavy out: 11 > 10
    day = "2026-03-10T"
    for i, stage in enumerate(["国六", "国6b", "国五", "国五", "国五"]):
        out += gate("E1", f"{day}08:0{i}:00", "in", f"冀A1000{i}", stage)
    out += gate("E1", f"{day}23:59:30", "in", "冀A10009", "纯电动", fuel="纯电动")
    for i in range(5):
        out += gate("E1", f"{day}17:0{i}:00", "out", f"冀A1000{i}", "国五")
    for i in range(3):  # light trucks: not heavy movements
        out += gate("E1", f"{day}09:0{i}:00", "in", f"冀A2000{i}", "国四", vehicle_class="轻型货车")
    # E1, 2026-03-09: 5 in, 5 out of 国四: 10, not more than 10
    for i in range(5):
        out += gate("E1", f"2026-03-09T10:0{i}:00", "in", f"冀A3000{i}", "国四")
        out += gate("E1", f"2026-03-09T15:0{i}:00", "out", f"冀A3000{i}", "国四")
    # E1, just after midnight on 03-11 (counts that day), and in February (not this month)
    out += gate("E1", "2026-03-11T00:00:10", "in", "冀A40001", "国六")
    out += gate("E1", "2026-02-28T23:00:00", "in", "冀A40002", "国六")
    # E2 (threshold 3), 2026-03-10: 2 in of 国六, 2 out: 4 > 3
    for i in range(2):
        out += gate("E2", f"{day}11:0{i}:00", "in", f"冀B1000{i}", "国六")
        out += gate("E2", f"{day}12:0{i}:00", "out", f"冀B1000{i}", "国六")
    return out


@pytest.fixture(scope="module")
def database(influx: localstack.ManagedProcess) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    write_points(influx.url, name, fixture_points())
    return name


async def test_figures_of_the_month_are_exact(
    influx: localstack.ManagedProcess, database: str
) -> None:
    reader = InfluxQLReader(influx.url, database)
    start = datetime(2026, 3, 1, tzinfo=CST)
    counts = await heavy_passages(reader, ["E1", "E2", "E3"], start, NOW)
    by_day = {(c.enterprise, c.day, c.direction): 0 for c in counts}
    for c in counts:
        by_day[(c.enterprise, c.day, c.direction)] += c.count
    assert by_day == {
        ("E1", date(2026, 3, 9), "in"): 5,
        ("E1", date(2026, 3, 9), "out"): 5,
        ("E1", date(2026, 3, 10), "in"): 6,
        ("E1", date(2026, 3, 10), "out"): 5,
        ("E1", date(2026, 3, 11), "in"): 1,
        ("E2", date(2026, 3, 10), "in"): 2,
        ("E2", date(2026, 3, 10), "out"): 2,
    }
    e1, e2 = transport.use(REGISTRY.data.enterprises, REGISTRY, counts)  # E3 has no gates
    assert (e1.heavy_movements, e1.heavy_user_days, e1.heavy_user_movements) == (22, 1, 10)
    assert (e1.heavy_entries, e1.clean_entries, e1.clean_share) == (12, 4, 4 / 12)
    assert (e2.heavy_movements, e2.heavy_user_days, e2.heavy_user_movements) == (4, 1, 3)
    assert (e2.heavy_entries, e2.clean_entries, e2.clean_share) == (2, 2, 1.0)


async def test_status_of_the_last_complete_day_and_the_month_so_far(
    influx: localstack.ManagedProcess, database: str
) -> None:
    reader = InfluxQLReader(influx.url, database)
    e1 = REGISTRY.enterprise("E1")
    assert e1 is not None
    found = await transport.status(reader, REGISTRY, e1, NOW)
    assert found is not None
    assert (found.day, found.heavy_movements, found.heavy_user) == (date(2026, 3, 10), 11, True)
    assert (found.month, found.heavy_entries, found.clean_entries) == ("2026-03", 12, 4)
    on_the_10th = await transport.status(reader, REGISTRY, e1, NOW - timedelta(days=1))
    assert on_the_10th is not None  # its last complete day is the 9th: 10, not more than 10
    assert (on_the_10th.heavy_movements, on_the_10th.heavy_user) == (10, False)
    # so far this month: the 9th's 5 entries and the 10th's 5 before 09:00 (2 国六)
    assert (on_the_10th.heavy_entries, on_the_10th.clean_entries) == (10, 2)
    e3 = REGISTRY.enterprise("E3")
    assert e3 is not None and await transport.status(reader, REGISTRY, e3, NOW) is None


@pytest.fixture
async def api(
    influx: localstack.ManagedProcess, database: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml({"chief": ("admin", {"all_regions": True}, TOKEN)}), "utf-8")
    store = AnomalyStore(tmp_path / "anomalies.sqlite")
    cases = CaseStore(tmp_path / "cases.sqlite")
    regime = Regime(tmp_path / "regime.sqlite")
    app = create_app(
        store=store,
        regime=regime,
        registry=lambda: REGISTRY,
        status=RegistryStatus(lambda: REGISTRY),
        accounts=Accounts(path),
        clock=lambda: NOW,
        cases=cases,
        influx=InfluxSection(url=influx.url, database=database),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client
    for s in (store, cases, regime):
        s.close()


async def test_the_monthly_report_and_the_enterprise_show_them(api: httpx.AsyncClient) -> None:
    reply = await api.get("/api/v1/reports/monthly", params={"month": "2026-03"})
    assert reply.status_code == 200, reply.text
    rows: list[dict[str, Any]] = reply.json()["transport"]
    assert [(r["enterprise"], r["heavy_movements"], r["heavy_user_days"]) for r in rows] == [
        ("E1", 22, 1),
        ("E2", 4, 1),
    ]
    assert (rows[0]["heavy_entries"], rows[0]["clean_entries"]) == (12, 4)
    assert rows[0]["clean_share"] == pytest.approx(1 / 3)
    daily = await api.get("/api/v1/reports/daily", params={"day": "2026-03-10"})
    assert daily.status_code == 200 and daily.json()["transport"] is None
    detail = (await api.get("/api/v1/enterprises/E2")).json()
    assert detail["transport"] == {
        "day": "2026-03-10",
        "heavy_movements": 4,
        "heavy_user": True,
        "heavy_user_movements": 3,
        "month": "2026-03",
        "heavy_entries": 2,
        "clean_entries": 2,
        "clean_share": 1.0,
    }
    assert (await api.get("/api/v1/enterprises/E3")).json()["transport"] is None


def test_the_count_inlines_values_for_3x() -> None:
    reader = InfluxQLReader("http://x", "db", bind_parameters=False)
    text, params = statement(reader, ["E'1"], NOW - timedelta(days=1), NOW)
    assert params == {} and "\"enterprise\" = 'E\\'1'" in text
    assert "GROUP BY time(1d, 16h)" in text
