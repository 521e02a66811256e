"""Cases over the API: the handling loop with named accounts and their scopes, each action
allowed or refused by role and state, history and audit rows, overdue by the API's clock, and
the store's listener (which anomalies open a case, and that a replay opens none)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from gateway.accounts import Accounts
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.api import RegistryStatus, create_app
from gateway.audit import AuditLog
from gateway.cases.model import By
from gateway.cases.store import CaseStore, policy
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import ADMIN, T0, TOKENS, accounts_toml, make_anomaly
from tests.api.test_openapi import CHECKS

REGISTRY = {
    "regions": [
        {"id": "320000", "name": "江苏省", "level": "province"},
        {"id": "320500", "name": "苏州市", "parent": "320000", "level": "city"},
        {"id": "320505", "name": "虎丘区", "parent": "320500", "level": "county"},
        {"id": "320506", "name": "吴中区", "parent": "320500", "level": "county"},
        {"id": "320200", "name": "无锡市", "parent": "320000", "level": "city"},
        {"id": "320214", "name": "新吴区", "parent": "320200", "level": "county"},
    ],
    "enterprises": [
        {"id": eid, "name": f"企业{n}", "region": region, "outlets": []}
        for n, (eid, region) in enumerate(
            [("E1", "320505"), ("E2", "320506"), ("E3", "320214")], start=1
        )
    ],
}
ACCOUNTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "chief": ("admin", {"all_regions": True}, "chief-token-0123456789"),
    "county": ("officer", {"regions": ["320505"]}, "county-token-0123456789"),  # E1
    "city": ("viewer", {"regions": ["320500"]}, "city-token-0123456789"),  # E1, E2
    "plant": ("enterprise", {"enterprises": ["E1"]}, "plant-token-0123456789"),
    "wuxi-plant": ("enterprise", {"enterprises": ["E3"]}, "wuxi-plant-token-0123456789"),
}
DEADLINE = (T0 + timedelta(days=3)).isoformat()
BODIES: dict[str, dict[str, Any] | None] = {
    "sign": None,
    "assign": {"assignee": "虎丘区执法一中队", "deadline": DEADLINE},
    "answer": {"text": "设备检修，已停产", "attachments": ["https://files.example/r.pdf"]},
    "verify": {"verdict": "device_fault", "note": "分析仪故障，已更换"},
    "close": {"note": "整改完成"},
    "reopen": {"reason": "复查发现仍超标"},
}
PATH = ["sign", "assign", "answer", "verify", "close"]  # the way from new to closed
REACHED = {"new": 0, "signed": 1, "checking": 2, "answered": 3, "verified": 4, "closed": 5}


def who(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ACCOUNTS[name][2]}"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cases(tmp_path: Path, store: AnomalyStore, clock: Clock) -> Iterator[CaseStore]:
    c = CaseStore(tmp_path / "cases.sqlite", policy({"suspicious_data"}), clock=clock)
    store.add_listener(c.on_anomaly)
    yield c
    c.close()


@pytest.fixture
async def api(
    tmp_path: Path,
    store: AnomalyStore,
    regime: Regime,
    audit: AuditLog,
    cases: CaseStore,
    clock: Clock,
) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_toml(ACCOUNTS), encoding="utf-8")
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    app = create_app(
        store=store,
        regime=regime,
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        accounts=Accounts(path),
        clock=clock,
        audit=audit,
        cases=cases,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


def alarm(store: AnomalyStore, enterprise: str = "E1", n: int = 0, **kw: Any) -> Anomaly:
    anomaly = make_anomaly(enterprise=enterprise, subject=f"outlet:{enterprise}/DA00{n}", **kw)
    store.record(anomaly)
    return anomaly


async def case_of(api: httpx.AsyncClient, anomaly: Anomaly) -> dict[str, Any]:
    reply = await api.get(f"/api/v1/anomalies/{anomaly.id}/case", headers=who("chief"))
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def post(
    api: httpx.AsyncClient, case_id: int, action: str, name: str, body: Any = None
) -> httpx.Response:
    url = f"/api/v1/cases/{case_id}/{action}"
    return await api.post(
        url, headers=who(name), json=body if body is not None else BODIES.get(action)
    )


async def drive(api: httpx.AsyncClient, case_id: int, state: str) -> None:
    for action in PATH[: REACHED[state]]:
        reply = await post(api, case_id, action, "chief")
        assert reply.status_code == 200, reply.text


async def test_the_whole_loop_with_history_and_audit(
    api: httpx.AsyncClient, store: AnomalyStore, audit: AuditLog
) -> None:
    anomaly = alarm(store)
    case = await case_of(api, anomaly)
    assert (case["state"], case["state_label"], case["enterprise"]) == ("new", "待签收", "E1")
    assert case["anomalies"] == [anomaly.id] and case["day"] == "2025-01-10"
    assert case["enterprise_name"] == "企业1" and case["overdue"] is False
    county = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    assert county["actions"] == ["sign", "answer", "join"]
    assert (county["level"], county["level_label"]) == ("alarm", "报警")
    steps = [("sign", "county"), ("assign", "county"), ("answer", "plant")]
    steps += [("verify", "county"), ("close", "county")]
    for action, name in steps:
        reply = await post(api, case["id"], action, name)
        assert reply.status_code == 200, reply.text
    detail = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    assert (detail["state"], detail["state_label"], detail["actions"]) == (
        "closed",
        "已销号",
        ["reopen"],
    )
    assert detail["signed_by"] == "county" and detail["assignee"] == "虎丘区执法一中队"
    assert detail["answer"]["attachments"] == ["https://files.example/r.pdf"]
    assert detail["answer"]["by"] == "plant" and detail["answer"]["on_behalf"] is False
    assert detail["finding"]["verdict"] == "device_fault"
    assert detail["finding"]["verdict_label"] == "设备故障"
    assert [a["id"] for a in detail["anomaly_items"]] == [anomaly.id]
    history = [(h["action"], h["actor"], h["from_state"], h["to_state"]) for h in detail["history"]]
    assert history == [
        ("open", "gateway", None, "new"),
        ("sign", "county", "new", "signed"),
        ("assign", "county", "signed", "checking"),
        ("answer", "plant", "checking", "answered"),
        ("verify", "county", "answered", "verified"),
        ("close", "county", "verified", "closed"),
    ]
    assert detail["history"][0]["action_label"] == "立案"
    assert detail["history"][2]["details"]["deadline"] == DEADLINE
    assert detail["history"][3]["actor_role"] == "enterprise"
    entries, total = audit.query(target=str(case["id"]), limit=10)
    assert total == 5
    recorded = [(e.action, e.actor, e.before["state"], e.after["state"]) for e in reversed(entries)]
    assert recorded == [
        (f"case.{a}", n, h[2], h[3]) for (a, n), h in zip(steps, history[1:], strict=True)
    ]
    assert entries[0].reason == "整改完成" and entries[0].at == T0


# the state each action starts from in the role table
START = {"sign": "new", "assign": "signed", "answer": "checking", "verify": "answered"}
START |= {"close": "verified", "reopen": "closed", "join": "new"}
MAY = {
    "chief": set(START),
    "county": set(START),
    "city": set(),
    "plant": {"answer"},
}


@pytest.mark.parametrize("name", sorted(MAY))
@pytest.mark.parametrize("action", sorted(START))
async def test_each_action_is_allowed_or_refused_by_role(
    api: httpx.AsyncClient, store: AnomalyStore, audit: AuditLog, action: str, name: str
) -> None:
    case = await case_of(api, alarm(store))
    await drive(api, case["id"], START[action])
    body = BODIES.get(action)
    if action == "join":  # a warning the policy leaves without a case, same enterprise and day
        loose = alarm(store, n=9, type_="device_offline", severity="warning")
        body = {"anomaly_id": loose.id}
    before = len(audit)
    reply = await post(api, case["id"], action, name, body)
    if action in MAY[name]:
        assert reply.status_code == 200, reply.text
        assert len(audit) == before + 1
        entry = audit.query(action=f"case.{action}")[0][0]
        assert (entry.actor, entry.before["state"]) == (name, START[action])
        assert entry.after["state"] == reply.json()["state"]
    else:
        assert reply.status_code == 403, reply.text
        assert len(audit) == before
        again = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("chief"))).json()
        assert again["state"] == START[action]


REFUSED_IN = {
    "sign": ["signed", "checking", "closed"],
    "assign": ["new", "answered", "verified", "closed"],
    "answer": ["verified", "closed"],
    "verify": ["new", "signed", "verified", "closed"],
    "close": ["new", "checking", "answered", "closed"],
    "reopen": ["new", "signed", "checking", "answered"],
}


@pytest.mark.parametrize(
    ("action", "state"), [(a, s) for a, states in REFUSED_IN.items() for s in states]
)
async def test_an_action_the_state_does_not_allow_is_409(
    api: httpx.AsyncClient, store: AnomalyStore, audit: AuditLog, action: str, state: str
) -> None:
    case = await case_of(api, alarm(store))
    await drive(api, case["id"], state)
    before = len(audit)
    reply = await post(api, case["id"], action, "county")
    assert reply.status_code == 409, reply.text
    assert state in reply.json()["detail"] and len(audit) == before


async def test_reopen_goes_back_to_checking_with_its_reason(
    api: httpx.AsyncClient, store: AnomalyStore, audit: AuditLog
) -> None:
    case = await case_of(api, alarm(store))
    await drive(api, case["id"], "closed")
    assert (await post(api, case["id"], "reopen", "county", {})).status_code == 422
    reply = await post(api, case["id"], "reopen", "county")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["state"], body["finding"], body["reopened"]) == ("checking", None, 1)
    assert body["assignee"] == "虎丘区执法一中队"  # kept
    entry = audit.query(action="case.reopen")[0][0]
    assert (entry.reason, entry.before["state"], entry.after["state"]) == (
        "复查发现仍超标",
        "closed",
        "checking",
    )
    verified = await post(
        api, case["id"], "verify", "county", {"verdict": "confirmed", "note": "属实"}
    )
    assert verified.json()["finding"]["verdict_label"] == "属实"
    detail = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    reopen = [h for h in detail["history"] if h["action"] == "reopen"]
    assert reopen[0]["details"] == {"reason": "复查发现仍超标"}
    assert reopen[0]["from_state"] == "closed" and reopen[0]["action_label"] == "重新核查"


async def test_overdue_follows_the_api_clock(
    api: httpx.AsyncClient, store: AnomalyStore, clock: Clock
) -> None:
    case = await case_of(api, alarm(store))
    await drive(api, case["id"], "signed")
    tomorrow = (T0 + timedelta(days=1)).isoformat()
    assert (
        await post(api, case["id"], "assign", "county", {"assignee": "A", "deadline": tomorrow})
    ).status_code == 200

    async def overdue(flag: str) -> list[int]:
        reply = await api.get(f"/api/v1/cases?overdue={flag}", headers=who("county"))
        return [c["id"] for c in reply.json()["items"]]

    assert await overdue("true") == [] and await overdue("false") == [case["id"]]
    clock.now = T0 + timedelta(days=2)
    assert await overdue("true") == [case["id"]] and await overdue("false") == []
    detail = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    assert detail["overdue"] is True
    await post(api, case["id"], "verify", "county")
    assert await overdue("true") == [] and await overdue("false") == [case["id"]]


async def test_an_empty_optional_note_is_no_note(
    api: httpx.AsyncClient, store: AnomalyStore
) -> None:
    case = await case_of(api, alarm(store))
    reply = await post(api, case["id"], "sign", "county", {"note": ""})
    assert reply.status_code == 200 and reply.json()["state"] == "signed"
    detail = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    assert detail["history"][-1]["details"] == {}


async def test_a_deadline_in_the_past_is_400(api: httpx.AsyncClient, store: AnomalyStore) -> None:
    case = await case_of(api, alarm(store))
    await drive(api, case["id"], "signed")
    past = {"assignee": "A", "deadline": "2025-01-09T08:00:00"}  # no offset: Beijing time
    reply = await post(api, case["id"], "assign", "county", past)
    assert reply.status_code == 400 and "future" in reply.json()["detail"]


async def test_an_enterprise_answers_only_its_own_enterprise_s_case(
    api: httpx.AsyncClient, store: AnomalyStore
) -> None:
    own = await case_of(api, alarm(store, "E1"))
    other = await case_of(api, alarm(store, "E3"))
    for case in (own, other):
        await drive(api, case["id"], "checking")
    assert (await post(api, own["id"], "answer", "wuxi-plant")).status_code == 404
    assert (await post(api, other["id"], "answer", "plant")).status_code == 404
    assert (await post(api, own["id"], "sign", "plant")).status_code == 403
    reply = await post(api, own["id"], "answer", "plant")
    assert reply.status_code == 200 and reply.json()["answer"]["on_behalf"] is False
    theirs = await post(api, other["id"], "answer", "wuxi-plant")
    assert theirs.status_code == 200
    # an officer records an answer given on paper: on the enterprise's behalf
    again = await post(api, own["id"], "answer", "county", {"text": "书面说明：已整改"})
    body = again.json()
    assert again.status_code == 200 and body["answer"]["on_behalf"] is True
    assert body["answer"]["by"] == "county" and body["answer"]["attachments"] == []


SEES = {"chief": {"E1", "E2", "E3"}, "county": {"E1"}, "city": {"E1", "E2"}}
SEES |= {"plant": {"E1"}, "wuxi-plant": {"E3"}}


@pytest.mark.parametrize("name", sorted(SEES))
async def test_outside_the_scope_a_case_does_not_exist(
    api: httpx.AsyncClient, store: AnomalyStore, name: str
) -> None:
    made = {e: alarm(store, e) for e in ("E1", "E2", "E3")}
    ids = {e: (await case_of(api, a))["id"] for e, a in made.items()}
    listed = (await api.get("/api/v1/cases", headers=who(name))).json()
    assert {c["enterprise"] for c in listed["items"]} == SEES[name]
    assert listed["total"] == len(SEES[name])
    narrowed = (await api.get("/api/v1/cases?enterprise=E3", headers=who(name))).json()
    assert narrowed["total"] == (1 if "E3" in SEES[name] else 0)
    for ent, case_id in ids.items():
        one = await api.get(f"/api/v1/cases/{case_id}", headers=who(name))
        by_anomaly = await api.get(f"/api/v1/anomalies/{made[ent].id}/case", headers=who(name))
        if ent in SEES[name]:
            assert one.status_code == by_anomaly.status_code == 200
        else:
            assert one.status_code == by_anomaly.status_code == 404
            if name == "county":  # an officer acting outside its scope
                assert (await post(api, case_id, "sign", name)).status_code == 404
    assert (await api.get("/api/v1/cases/999", headers=who(name))).status_code == 404


async def test_filters_and_paging(api: httpx.AsyncClient, store: AnomalyStore) -> None:
    first = await case_of(api, alarm(store, "E1"))
    second = await case_of(api, alarm(store, "E2"))
    await drive(api, first["id"], "checking")
    page = (await api.get("/api/v1/cases?limit=1", headers=who("chief"))).json()
    assert ([c["id"] for c in page["items"]], page["total"]) == ([second["id"]], 2)
    rest = (await api.get("/api/v1/cases?limit=1&offset=1", headers=who("chief"))).json()
    assert [c["id"] for c in rest["items"]] == [first["id"]]
    checking = (await api.get("/api/v1/cases?state=checking", headers=who("chief"))).json()
    assert [c["id"] for c in checking["items"]] == [first["id"]]
    mine = await api.get("/api/v1/cases?assignee=虎丘区执法一中队", headers=who("chief"))
    assert [c["id"] for c in mine.json()["items"]] == [first["id"]]


async def test_an_officer_joins_an_anomaly_of_the_same_enterprise_and_day(
    api: httpx.AsyncClient, store: AnomalyStore
) -> None:
    case = await case_of(api, alarm(store, "E1"))
    loose = alarm(store, "E1", n=5, type_="device_offline", severity="warning")
    reply = await post(api, case["id"], "join", "county", {"anomaly_id": loose.id})
    assert reply.status_code == 200 and reply.json()["anomalies"] == [*case["anomalies"], loose.id]
    again = await post(api, case["id"], "join", "county", {"anomaly_id": loose.id})
    assert again.status_code == 409
    next_day = alarm(
        store,
        "E1",
        n=6,
        type_="device_offline",
        severity="warning",
        started_at=T0 + timedelta(days=1),
    )
    assert (
        await post(api, case["id"], "join", "county", {"anomaly_id": next_day.id})
    ).status_code == 409
    e2 = alarm(store, "E2", n=7, type_="device_offline", severity="warning")
    assert (await post(api, case["id"], "join", "county", {"anomaly_id": e2.id})).status_code == 404
    assert (await post(api, case["id"], "join", "chief", {"anomaly_id": e2.id})).status_code == 409
    detail = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    assert detail["history"][-1]["details"]["anomaly_id"] == loose.id


# -- the listener ----------------------------------------------------------------------------


async def test_a_warning_of_a_type_not_in_the_policy_opens_no_case(
    api: httpx.AsyncClient, store: AnomalyStore, cases: CaseStore
) -> None:
    ignored = alarm(store, type_="device_offline", severity="warning")
    reply = await api.get(f"/api/v1/anomalies/{ignored.id}/case", headers=who("chief"))
    assert reply.status_code == 404 and len(cases) == 0
    listed = alarm(store, "E2", type_="suspicious_data", severity="warning")
    assert cases.case_of(listed.id) is not None and len(cases) == 1


def test_a_replayed_anomaly_event_opens_no_second_case(
    store: AnomalyStore, cases: CaseStore
) -> None:
    anomaly = make_anomaly()
    event = store.record(anomaly)
    assert event is not None and len(cases) == 1
    cases.on_anomaly(event)  # the same event delivered again
    assert store.record(anomaly) is None  # the anomaly store drops the replay itself
    closed = store.record(anomaly.closed(T0 + timedelta(hours=1)))
    assert closed is not None
    cases.on_anomaly(closed)
    case = cases.case_of(anomaly.id)
    assert case is not None and len(cases) == 1 and case.anomalies == (anomaly.id,)
    assert [s.action for s in cases.history(case.id)] == ["open"]


def test_an_escalated_warning_opens_its_case_then(store: AnomalyStore, cases: CaseStore) -> None:
    warning = make_anomaly(type_="device_offline", severity="warning")
    store.record(warning)
    assert len(cases) == 0
    store.record(replace(warning, severity="alarm", as_of=T0 + timedelta(hours=2)))
    assert cases.case_of(warning.id) is not None


async def test_a_warning_is_the_enterprise_s_to_answer_and_stays_answered_as_an_alarm(
    api: httpx.AsyncClient, store: AnomalyStore, cases: CaseStore, audit: AuditLog
) -> None:
    warning = alarm(store, type_="suspicious_data", severity="warning")
    case = await case_of(api, warning)
    assert (case["level"], case["level_label"], case["state"]) == ("warning", "预警", "new")
    own = await api.get("/api/v1/cases?level=warning", headers=who("plant"))
    assert [c["id"] for c in own.json()["items"]] == [case["id"]]
    assert (await api.get("/api/v1/cases?level=alarm", headers=who("plant"))).json()["total"] == 0
    assert (await api.get("/api/v1/cases?level=severe", headers=who("plant"))).status_code == 422
    answered = await post(api, case["id"], "answer", "plant", {"text": "分析仪校准中"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["state"] == "new" and answered.json()["answer"]["text"] == "分析仪校准中"
    # the warning becomes an alarm: the case is raised, by the gateway, its answer kept
    store.record(replace(warning, severity="alarm", as_of=T0 + timedelta(hours=2)))
    detail = (await api.get(f"/api/v1/cases/{case['id']}", headers=who("county"))).json()
    assert (detail["level"], detail["level_label"], detail["state"]) == ("alarm", "报警", "new")
    assert detail["answer"]["text"] == "分析仪校准中" and detail["answer"]["by"] == "plant"
    steps = [(h["action"], h["actor"], h["action_label"]) for h in detail["history"]]
    assert steps == [
        ("open", "gateway", "立案"),
        ("answer", "plant", "企业反馈"),
        ("escalate", "gateway", "升级为报警"),
    ]
    assert [e.action for e in audit.query(target=str(case["id"]), limit=10)[0]] == ["case.answer"]
    alarms = await api.get("/api/v1/cases?level=alarm", headers=who("county"))
    assert [c["id"] for c in alarms.json()["items"]] == [case["id"]]
    # a second alarm version raises nothing more
    store.record(replace(warning, severity="alarm", as_of=T0 + timedelta(hours=3)))
    assert len(cases.history(case["id"])) == 3


def test_an_alarm_joining_a_warning_case_raises_it(store: AnomalyStore, cases: CaseStore) -> None:
    warning = make_anomaly(type_="suspicious_data", severity="warning", subject="outlet:DA001")
    store.record(warning)
    case = cases.case_of(warning.id)
    assert case is not None and case.level == "warning"
    store.record(make_anomaly(subject="outlet:DA002", started_at=T0 + timedelta(hours=1)))
    joined = cases.get(case.id)
    assert joined is not None and joined.level == "alarm" and len(joined.anomalies) == 2


def test_an_alarm_after_a_handled_warning_case_opens_a_case_of_its_own(
    store: AnomalyStore, cases: CaseStore
) -> None:
    warning = make_anomaly(type_="suspicious_data", severity="warning")
    store.record(warning)
    case = cases.case_of(warning.id)
    assert case is not None
    for action, details in (
        ("sign", {}),
        ("assign", {"assignee": "一中队", "deadline": T0 + timedelta(days=1)}),
        ("verify", {"verdict": "false_alarm", "note": "校准"}),
    ):
        cases.act(case.id, action, By("zhang", "officer"), T0, details)
    store.record(replace(warning, severity="alarm", as_of=T0 + timedelta(hours=2)))
    before = cases.get(case.id)
    assert before is not None and (before.level, before.state) == ("warning", "verified")
    assert before.anomalies == (warning.id,)  # the handled case keeps its record
    now = cases.case_of(warning.id)
    assert now is not None and now.id != case.id
    assert (now.level, now.state, now.anomalies) == ("alarm", "new", (warning.id,))
    assert len(cases) == 2


def test_anomalies_of_one_enterprise_and_beijing_day_join_one_case(
    store: AnomalyStore, cases: CaseStore
) -> None:
    first = alarm(store, "E1", n=1)
    second = alarm(store, "E1", n=2, started_at=T0 + timedelta(hours=15))  # 23:00 Beijing
    next_day = alarm(store, "E1", n=3, started_at=T0 + timedelta(hours=16))  # 00:00 next day
    other = alarm(store, "E2", n=4)
    case = cases.case_of(first.id)
    assert case is not None and case.anomalies == (first.id, second.id)
    steps = cases.history(case.id)
    assert [(s.action, s.actor, s.actor_role) for s in steps][1] == ("join", "gateway", "system")
    assert cases.case_of(next_day.id) not in (None, case)
    assert cases.case_of(other.id) not in (None, case)
    assert len(cases) == 3
    # once verified, a case takes no more: the next one of that day opens a new case
    chief = By("chief", "admin")
    cases.act(case.id, "sign", chief, T0, {})
    cases.act(case.id, "assign", chief, T0, {"assignee": "A", "deadline": T0 + timedelta(days=1)})
    cases.act(case.id, "verify", chief, T0, {"verdict": "other", "note": "n"})
    late = alarm(store, "E1", n=8, started_at=T0 + timedelta(hours=1))
    assert cases.case_of(late.id) not in (None, case) and len(cases) == 4


def test_a_change_the_audit_cannot_record_is_not_made(
    store: AnomalyStore, cases: CaseStore
) -> None:
    anomaly = alarm(store)
    case = cases.case_of(anomaly.id)
    assert case is not None

    def broken(before: Any, after: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        cases.act(case.id, "sign", By("chief", "admin"), T0, {}, broken)
    again = cases.get(case.id)
    assert again is not None and again.state == "new" and len(cases.history(case.id)) == 1


def test_the_history_is_append_only(store: AnomalyStore, cases: CaseStore) -> None:
    import sqlite3

    alarm(store)
    db = sqlite3.connect(str(cases.path))
    try:
        for sql in ("UPDATE case_step SET actor = 'x'", "DELETE FROM case_step"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()


def test_the_case_routes_conform_to_the_openapi_document(tmp_path: Path) -> None:
    store = AnomalyStore(tmp_path / "anomalies.db")
    cases = CaseStore(tmp_path / "cases.sqlite", clock=lambda: T0)
    store.add_listener(cases.on_anomaly)
    for i, enterprise in enumerate(["E1", "E2", "E1"]):
        store.record(
            make_anomaly(
                enterprise=enterprise, subject=f"mn:{i}", started_at=T0 - timedelta(days=i)
            )
        )
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    app = create_app(
        store=store,
        regime=Regime(tmp_path / "regime.db"),
        registry=lambda: registry,
        status=RegistryStatus(lambda: registry),
        tokens=TOKENS,
        clock=lambda: T0,
        audit=AuditLog(tmp_path / "audit.db"),
        cases=cases,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    ours = [op for op in operations if "/cases" in op.path or op.path.endswith("/case")]
    assert len(ours) == 10
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for operation in ours:

            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(headers=ADMIN, checks=CHECKS)

            try:
                check()
            except Exception as exc:
                exc.add_note(f"operation: {operation.label} ({mode.value})")
                raise
