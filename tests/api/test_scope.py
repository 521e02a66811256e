"""Named accounts and their scope: every read is limited to the caller's regions and
enterprises, and outside them a resource does not exist (404). Accounts come from a file of
hashed tokens that is read again when it changes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.accounts import Accounts, token_hash
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import T0, make_anomaly

REGIONS = [
    {"id": "320000", "name": "江苏省", "level": "province"},
    {"id": "320500", "name": "苏州市", "parent": "320000", "level": "city"},
    {"id": "320505", "name": "虎丘区", "parent": "320500", "level": "county"},
    {"id": "320506", "name": "吴中区", "parent": "320500", "level": "county"},
    {"id": "320200", "name": "无锡市", "parent": "320000", "level": "city"},
    {"id": "320214", "name": "新吴区", "parent": "320200", "level": "county"},
]


def _enterprise(eid: str, region: str, n: int) -> dict[str, Any]:
    return {
        "id": eid,
        "name": f"企业{n}",
        "region": region,
        "outlets": [{"id": "DA001", "mn": f"MN000{n}", "password": f"pw-{n}"}],
        "meters": [{"id": "PM1", "role": "production", "line": "L1"}],
    }


REGISTRY = {
    "regions": REGIONS,
    "enterprises": [
        _enterprise("E1", "320505", 1),  # 虎丘区, 苏州市
        _enterprise("E2", "320506", 2),  # 吴中区, 苏州市
        _enterprise("E3", "320214", 3),  # 新吴区, 无锡市
    ],
}

ACCOUNTS = {
    "admin": ("admin", {"all_regions": True}),
    "county": ("officer", {"regions": ["320505"]}),  # 虎丘区 only
    "city": ("viewer", {"regions": ["320500"]}),  # 苏州市: 虎丘区 and 吴中区
    "plant": ("enterprise", {"enterprises": ["E3"]}),
}


def _token(name: str) -> str:
    return f"token-of-{name}-0123456789abcdef"


def _accounts_toml(accounts: dict[str, tuple[str, dict[str, Any]]], salt: str = "") -> str:
    out = []
    for name, (role, scope) in accounts.items():
        lines = [
            "[[accounts]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'token_sha256 = "{token_hash(_token(name) + salt)}"',
        ]
        for key, value in scope.items():
            rendered = "true" if value is True else "[" + ", ".join(f'"{v}"' for v in value) + "]"
            lines.append(f"{key} = {rendered}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def auth(name: str, salt: str = "") -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(name) + salt}"}


@pytest.fixture
def accounts_file(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(_accounts_toml(ACCOUNTS), encoding="utf-8")
    return path


@pytest.fixture
def recorded(store: AnomalyStore) -> dict[str, Anomaly]:
    out = {}
    for ent in ("E1", "E2", "E3"):
        out[ent] = make_anomaly(enterprise=ent, subject=f"outlet:{ent}/DA001/a21026")
        store.record(out[ent])
    out[""] = make_anomaly(type_="unregistered_device", enterprise="", subject="address:10.0.0.9")
    store.record(out[""])
    return out


@pytest.fixture
def scoped_app(store: AnomalyStore, regime: Regime, accounts_file: Path) -> Callable[..., FastAPI]:
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    regime.within = registry.regions.within  # as the daemon wires it

    def make(**overrides: Any) -> FastAPI:
        kwargs: dict[str, Any] = {
            "store": store,
            "regime": regime,
            "registry": lambda: registry,
            "status": RegistryStatus(lambda: registry),
            "accounts": Accounts(accounts_file),
            "clock": lambda: T0,
            "stream_heartbeat_s": 0.01,
            "stream_max_s": 0.3,
        }
        kwargs.update(overrides)
        return create_app(**kwargs)

    return make


@pytest.fixture
async def api(scoped_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=scoped_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


SEES = {
    "admin": {"E1", "E2", "E3", ""},
    "county": {"E1"},
    "city": {"E1", "E2"},
    "plant": {"E3"},
}


@pytest.mark.parametrize("who", sorted(SEES))
async def test_the_anomaly_list_holds_only_the_scope(
    api: httpx.AsyncClient, recorded: dict[str, Anomaly], who: str
) -> None:
    reply = await api.get("/api/v1/anomalies", headers=auth(who))
    assert reply.status_code == 200
    body = reply.json()
    assert {a["enterprise"] for a in body["items"]} == SEES[who]
    assert body["total"] == len(SEES[who])
    # a filter cannot reach past the scope
    outside = await api.get("/api/v1/anomalies?enterprise=E3", headers=auth(who))
    assert outside.json()["total"] == (1 if "E3" in SEES[who] else 0)


@pytest.mark.parametrize("who", sorted(SEES))
async def test_outside_the_scope_an_anomaly_does_not_exist(
    api: httpx.AsyncClient, recorded: dict[str, Anomaly], who: str
) -> None:
    for ent, anomaly in recorded.items():
        one = await api.get(f"/api/v1/anomalies/{anomaly.id}", headers=auth(who))
        chart = await api.get(f"/api/v1/anomalies/{anomaly.id}/series", headers=auth(who))
        if ent in SEES[who]:
            assert one.status_code == 200 and one.json()["id"] == anomaly.id
            assert chart.status_code in (200, 503)  # no InfluxDB configured here
        else:
            assert one.status_code == 404 and chart.status_code == 404


@pytest.mark.parametrize("who", sorted(SEES))
async def test_enterprises_devices_and_series_follow_the_scope(
    api: httpx.AsyncClient, who: str
) -> None:
    visible = SEES[who] - {""}
    listed = await api.get("/api/v1/enterprises", headers=auth(who))
    assert {e["id"] for e in listed.json()} == visible
    devices = await api.get("/api/v1/devices", headers=auth(who))
    assert {d["enterprise"] for d in devices.json()} == visible
    for ent in ("E1", "E2", "E3"):
        detail = await api.get(f"/api/v1/enterprises/{ent}", headers=auth(who))
        assert detail.status_code == (200 if ent in visible else 404)
        series = await api.get(
            f"/api/v1/series?enterprise={ent}&meter=PM1&start=2025-01-09T00:00:00%2B08:00",
            headers=auth(who),
        )
        assert (series.status_code == 404) == (ent not in visible)


async def test_the_stream_carries_only_the_scope(
    api: httpx.AsyncClient, recorded: dict[str, Anomaly]
) -> None:
    reply = await api.get("/api/v1/anomalies/stream?after=0", headers=auth("city"))
    assert reply.status_code == 200
    seen = {line for line in reply.text.splitlines() if line.startswith("data: ")}
    ids = {a.id for a in recorded.values()}
    shown = {i for i in ids if any(i in line for line in seen)}
    assert shown == {recorded["E1"].id, recorded["E2"].id}


async def test_unknown_and_missing_tokens_are_refused(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/anomalies")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await api.get("/api/v1/anomalies", headers=bad)).status_code == 401


async def test_a_rotated_token_works_at_once_and_the_old_one_stops(
    api: httpx.AsyncClient, accounts_file: Path
) -> None:
    assert (await api.get("/api/v1/anomalies", headers=auth("county"))).status_code == 200
    accounts_file.write_text(_accounts_toml(ACCOUNTS, salt="-rotated"), encoding="utf-8")
    stat = accounts_file.stat()
    os.utime(accounts_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert (await api.get("/api/v1/anomalies", headers=auth("county"))).status_code == 401
    rotated = auth("county", salt="-rotated")
    assert (await api.get("/api/v1/anomalies", headers=rotated)).status_code == 200


async def test_a_broken_accounts_file_keeps_the_accounts_in_force(
    api: httpx.AsyncClient, accounts_file: Path
) -> None:
    accounts_file.write_text("[[accounts]]\nname = 'x'\n", encoding="utf-8")
    assert (await api.get("/api/v1/anomalies", headers=auth("county"))).status_code == 200


def test_an_account_without_a_scope_or_an_enterprise_with_regions_is_refused(
    tmp_path: Path,
) -> None:
    from gateway.errors import ConfigError

    for scope, role in (({}, "viewer"), ({"regions": ["320000"]}, "enterprise")):
        path = tmp_path / "accounts.toml"
        path.write_text(_accounts_toml({"x": (role, scope)}), encoding="utf-8")
        with pytest.raises(ConfigError):
            Accounts(path)


def test_legacy_tokens_see_everything(store: AnomalyStore, regime: Regime) -> None:
    accounts = Accounts(None, {"legacy-token": "viewer"})
    caller = accounts.caller("legacy-token")
    assert caller is not None and caller.all_regions and caller.role == "viewer"
    assert accounts.caller("other") is None
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    assert caller.visible(registry) is None
    assert create_app(
        store=store,
        regime=regime,
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        accounts=accounts,
    )


async def test_the_region_filter_covers_the_regions_under_it_within_the_scope(
    api: httpx.AsyncClient, recorded: dict[str, Anomaly]
) -> None:
    city = await api.get("/api/v1/anomalies?region=320500", headers=auth("admin"))
    assert {a["enterprise"] for a in city.json()["items"]} == {"E1", "E2"}
    county = await api.get("/api/v1/anomalies?region=320506", headers=auth("county"))
    assert county.json()["total"] == 0  # 吴中区 lies outside 虎丘区's officer's scope
    stream = await api.get("/api/v1/anomalies/stream?after=0&region=320200", headers=auth("admin"))
    assert recorded["E3"].id in stream.text and recorded["E1"].id not in stream.text


async def test_regions_and_enterprises_name_what_the_caller_sees(api: httpx.AsyncClient) -> None:
    regions = (await api.get("/api/v1/regions", headers=auth("county"))).json()
    assert [(r["id"], r["name"]) for r in regions] == [
        ("320000", "江苏省"),
        ("320500", "苏州市"),
        ("320505", "虎丘区"),
    ]
    ents = (await api.get("/api/v1/enterprises", headers=auth("county"))).json()
    assert [(e["id"], e["region_name"]) for e in ents] == [("E1", "虎丘区")]


async def test_the_list_says_where_its_stream_resumes(
    api: httpx.AsyncClient, recorded: dict[str, Anomaly], store: AnomalyStore
) -> None:
    body = (await api.get("/api/v1/anomalies", headers=auth("admin"))).json()
    assert body["last_seq"] == store.last_seq() == 4


async def test_the_export_follows_the_region_filter_too(
    api: httpx.AsyncClient, recorded: dict[str, Anomaly]
) -> None:
    reply = await api.get("/api/v1/export/anomalies.csv?region=320200", headers=auth("admin"))
    assert reply.status_code == 200
    body = reply.content.decode("utf-8-sig")
    assert recorded["E3"].id in body and recorded["E1"].id not in body


async def test_an_alert_names_only_what_the_caller_sees_and_a_city_alert_covers_its_counties(
    api: httpx.AsyncClient,
) -> None:
    window = {"starts_at": "2025-01-10T00:00:00+08:00", "ends_at": "2025-01-11T00:00:00+08:00"}
    both = {"level": "orange", "enterprises": ["E1", "E3"], **window}
    named = (await api.post("/api/v1/alerts", json=both, headers=auth("admin"))).json()
    city = {"level": "red", "regions": ["320500"], **window}
    suzhou = (await api.post("/api/v1/alerts", json=city, headers=auth("admin"))).json()
    seen = {a["id"]: a for a in (await api.get("/api/v1/alerts", headers=auth("county"))).json()}
    assert seen[named["id"]]["enterprises"] == ["E1"]  # E3 lies outside 虎丘区
    assert suzhou["id"] in seen  # 苏州市's alert covers 虎丘区's enterprise
    one = await api.get(f"/api/v1/alerts/{named['id']}", headers=auth("plant"))
    assert one.status_code == 200 and one.json()["enterprises"] == ["E3"]
    assert (
        await api.get(f"/api/v1/alerts/{suzhou['id']}", headers=auth("plant"))
    ).status_code == 404
    detail = (await api.get("/api/v1/enterprises/E1", headers=auth("county"))).json()
    shown = {a["id"]: a["enterprises"] for a in detail["control"]["alerts"]}
    assert shown == {named["id"]: ["E1"], suzhou["id"]: []}


def test_an_accounts_file_emptied_or_cut_keeps_the_accounts_in_force(accounts_file: Path) -> None:
    accounts = Accounts(accounts_file)
    assert accounts.caller(_token("county")) is not None
    accounts_file.write_text("", encoding="utf-8")  # an editor that truncates first
    assert accounts.caller(_token("county")) is not None
    accounts_file.write_bytes(_accounts_toml(ACCOUNTS).encode()[:-3] + "张".encode()[:2])
    assert accounts.caller(_token("county")) is not None  # cut mid-character: refused


def test_account_names_of_the_legacy_tokens_are_refused_in_the_file(tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    path = tmp_path / "accounts.toml"
    path.write_text(_accounts_toml({"token-1": ("viewer", {"all_regions": True})}))
    with pytest.raises(ConfigError, match="legacy"):
        Accounts(path)
