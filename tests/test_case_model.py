"""The case model alone: states, who may take which action in which state, details, overdue."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.cases.model import (
    ACTION_LABELS,
    ACTIONS,
    STATE_LABELS,
    STATES,
    SYSTEM,
    VERDICT_LABELS,
    VERDICTS,
    BadDetails,
    By,
    Case,
    Conflict,
    Forbidden,
    apply,
    beijing_day,
    case_from_json,
    case_json,
    open_case,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2025, 1, 10, 8, 0, tzinfo=CST)
LATER = T0 + timedelta(hours=1)

OFFICER = By("zhang", "officer")
ADMIN = By("chief", "admin")
VIEWER = By("li", "viewer")
PLANT = By("plant-e1", "enterprise", ("E1",))
OTHER_PLANT = By("plant-e3", "enterprise", ("E3",))
ROLES = {"officer": OFFICER, "admin": ADMIN, "viewer": VIEWER, "enterprise": PLANT}

# Written out by hand, not read from the model: action -> (states it starts from, state it
# leads to (None: the same), roles that may take it)
EXPECTED: dict[str, tuple[set[str], str | None, set[str]]] = {
    "sign": ({"new"}, "signed", {"officer", "admin"}),
    "assign": ({"signed", "checking"}, "checking", {"officer", "admin"}),
    # answered early (new, signed), the state stays: see test_an_early_answer_keeps_the_state
    "answer": (
        {"new", "signed", "checking", "answered"},
        "answered",
        {"enterprise", "officer", "admin"},
    ),
    "verify": ({"checking", "answered"}, "verified", {"officer", "admin"}),
    "close": ({"verified"}, "closed", {"officer", "admin"}),
    "reopen": ({"verified", "closed"}, "checking", {"officer", "admin"}),
    "join": ({"new", "signed", "checking", "answered"}, None, {"officer", "admin"}),
    "escalate": ({"new", "signed", "checking", "answered"}, None, set()),  # the gateway's only
}
EARLY = {"new", "signed"}

DETAILS: dict[str, dict[str, Any]] = {
    "sign": {"note": "收到"},
    "assign": {"assignee": "虎丘区执法大队", "deadline": T0 + timedelta(days=3)},
    "answer": {"text": "检修中", "attachments": ["https://files.example/a.pdf"]},
    "verify": {"verdict": "device_fault", "note": "分析仪故障"},
    "close": {},
    "reopen": {"reason": "复查发现问题"},
    "join": {"anomaly_id": "a2", "enterprise": "E1", "day": date(2025, 1, 10)},
    "escalate": {"anomaly_id": "a1"},
}


def new_case() -> Case:
    return replace(open_case("a1", "E1", T0, T0), id=7)


def in_state(state: str) -> Case:
    return replace(new_case(), state=state)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_by_role_and_state(action: str, role: str, state: str) -> None:
    from_states, to, roles = EXPECTED[action]
    case = in_state(state)
    if role not in roles:
        with pytest.raises(Forbidden):
            apply(case, action, ROLES[role], LATER, **DETAILS[action])
    elif state not in from_states:
        with pytest.raises(Conflict):
            apply(case, action, ROLES[role], LATER, **DETAILS[action])
    else:
        after = apply(case, action, ROLES[role], LATER, **DETAILS[action])
        early = action == "answer" and state in EARLY
        assert after.state == (state if early else to or state)
        assert after.updated_at == LATER and case.state == state  # the old one unchanged


def test_the_whole_loop() -> None:
    case = new_case()
    assert case.state == "new" and case.anomalies == ("a1",) and case.day == date(2025, 1, 10)
    case = apply(case, "sign", OFFICER, LATER)
    assert (case.state, case.signed_by) == ("signed", "zhang")
    deadline = T0 + timedelta(days=3)
    case = apply(case, "assign", OFFICER, LATER, assignee="一中队", deadline=deadline)
    assert (case.state, case.assignee, case.deadline) == ("checking", "一中队", deadline)
    case = apply(case, "answer", PLANT, LATER, text="停产检修", attachments=["http://x.cn/1.jpg"])
    assert case.state == "answered" and case.answer is not None
    assert case.answer.attachments == ("http://x.cn/1.jpg",) and not case.answer.on_behalf
    case = apply(case, "verify", OFFICER, LATER, verdict="normal_operation", note="工况正常")
    assert case.state == "verified" and case.finding is not None
    assert (case.finding.verdict, case.finding.by) == ("normal_operation", "zhang")
    case = apply(case, "close", ADMIN, LATER)
    assert case.state == "closed"


def test_an_early_answer_keeps_the_state_and_stays_through_the_check() -> None:
    warning = replace(new_case(), level="warning")
    answered = apply(warning, "answer", PLANT, LATER, text="已安排检修分析仪")
    assert answered.state == "new" and answered.answer is not None
    assert answered.answer.text == "已安排检修分析仪" and not answered.answer.on_behalf
    signed = apply(answered, "sign", OFFICER, LATER)
    deadline = T0 + timedelta(days=2)
    checking = apply(signed, "assign", OFFICER, LATER, assignee="一中队", deadline=deadline)
    assert checking.state == "checking" and checking.answer == answered.answer


def test_escalate_raises_a_warning_case_to_an_alarm_by_the_gateway_only() -> None:
    warning = replace(new_case(), level="warning")
    answered = apply(warning, "answer", PLANT, LATER, text="停电")
    raised = apply(answered, "escalate", SYSTEM, LATER, anomaly_id="a1")
    assert (raised.level, raised.state, raised.answer) == ("alarm", "new", answered.answer)
    with pytest.raises(Conflict, match="alarm already"):
        apply(raised, "escalate", SYSTEM, LATER, anomaly_id="a1")
    with pytest.raises(Conflict, match="not in case"):
        apply(warning, "escalate", SYSTEM, LATER, anomaly_id="other")
    for who in (OFFICER, ADMIN, PLANT):
        with pytest.raises(Forbidden):
            apply(warning, "escalate", who, LATER, anomaly_id="a1")
    with pytest.raises(Conflict):
        apply(replace(warning, state="closed"), "escalate", SYSTEM, LATER, anomaly_id="a1")


def test_joining_an_alarm_raises_the_level_and_a_warning_does_not_lower_it() -> None:
    warning = replace(new_case(), level="warning")
    join = {"enterprise": "E1", "day": date(2025, 1, 10)}
    same = apply(warning, "join", SYSTEM, LATER, anomaly_id="a2", level="warning", **join)
    assert same.level == "warning"
    raised = apply(same, "join", SYSTEM, LATER, anomaly_id="a3", level="alarm", **join)
    assert raised.level == "alarm"
    kept = apply(raised, "join", SYSTEM, LATER, anomaly_id="a4", level="warning", **join)
    assert kept.level == "alarm" and kept.anomalies == ("a1", "a2", "a3", "a4")
    with pytest.raises(BadDetails, match="level"):
        apply(warning, "join", SYSTEM, LATER, anomaly_id="a5", level="severe", **join)


def test_an_officer_records_an_answer_on_the_enterprise_s_behalf() -> None:
    after = apply(in_state("checking"), "answer", OFFICER, LATER, text="电话告知：检修")
    assert after.answer is not None and after.answer.on_behalf and after.answer.by == "zhang"
    assert after.answer.attachments == ()


def test_an_enterprise_answers_only_its_own_enterprises_cases() -> None:
    with pytest.raises(Forbidden, match="own enterprises"):
        apply(in_state("checking"), "answer", OTHER_PLANT, LATER, text="x")


def test_reopen_clears_the_verdict_and_keeps_or_replaces_the_assignment() -> None:
    deadline = T0 + timedelta(days=3)
    case = apply(in_state("signed"), "assign", OFFICER, LATER, assignee="A", deadline=deadline)
    case = apply(case, "verify", OFFICER, LATER, verdict="false_alarm", note="误报")
    case = apply(case, "close", OFFICER, LATER)
    again = apply(case, "reopen", ADMIN, LATER, reason="群众举报")
    assert (again.state, again.finding, again.reopened) == ("checking", None, 1)
    assert (again.assignee, again.deadline) == ("A", deadline)
    later = T0 + timedelta(days=5)
    moved = apply(again, "verify", OFFICER, LATER, verdict="confirmed", note="属实")
    moved = apply(moved, "reopen", OFFICER, LATER, reason="r", assignee="B", deadline=later)
    assert (moved.assignee, moved.deadline, moved.reopened) == ("B", later, 2)


def test_overdue_is_past_the_deadline_and_not_done() -> None:
    deadline = T0 + timedelta(days=1)
    case = apply(in_state("signed"), "assign", OFFICER, LATER, assignee="A", deadline=deadline)
    assert not case.overdue(deadline) and case.overdue(deadline + timedelta(seconds=1))
    answered = apply(case, "answer", PLANT, LATER, text="t")
    assert answered.overdue(deadline + timedelta(days=1))
    verified = apply(answered, "verify", OFFICER, LATER, verdict="other", note="n")
    assert not verified.overdue(deadline + timedelta(days=1))
    closed = apply(verified, "close", OFFICER, LATER)
    assert not closed.overdue(deadline + timedelta(days=1))
    assert not new_case().overdue(T0 + timedelta(days=365))  # no deadline, never overdue


@pytest.mark.parametrize(
    ("action", "details", "problem"),
    [
        ("assign", {"assignee": "A"}, "deadline is required"),
        ("assign", {"assignee": "A", "deadline": datetime(2025, 2, 1)}, "offset"),
        ("assign", {"assignee": "A", "deadline": T0}, "future"),
        ("assign", {"assignee": " ", "deadline": T0 + timedelta(days=1)}, "empty"),
        ("sign", {"color": "red"}, "unknown details color"),
        ("verify", {"verdict": "guilty", "note": "n"}, "one of"),
        ("verify", {"verdict": "confirmed"}, "note is required"),
        ("answer", {"text": "t", "attachments": ["ftp://x/y"]}, "not an http"),
        ("answer", {"text": "t", "attachments": "https://x/y"}, "list of links"),
        ("answer", {"text": "t", "attachments": ["https://x/"] * 21}, "at most"),
        ("answer", {"text": "x" * 10_001}, "longer"),
        ("reopen", {}, "reason is required"),
    ],
)
def test_details_are_checked(action: str, details: dict[str, Any], problem: str) -> None:
    state = {"assign": "signed", "sign": "new", "reopen": "closed"}.get(action, "checking")
    with pytest.raises(BadDetails, match=problem):
        apply(in_state(state), action, OFFICER, LATER, **details)


def test_an_unknown_action_or_a_naive_time_is_refused() -> None:
    with pytest.raises(BadDetails, match="unknown action"):
        apply(new_case(), "delete", ADMIN, LATER)
    with pytest.raises(ValueError, match="timezone-aware"):
        apply(new_case(), "sign", ADMIN, datetime(2025, 1, 10, 9))


def test_join_takes_an_anomaly_of_the_same_enterprise_and_beijing_day_once() -> None:
    case = apply(new_case(), "join", OFFICER, LATER, **DETAILS["join"])
    assert case.anomalies == ("a1", "a2") and case.state == "new"
    with pytest.raises(Conflict, match="already"):
        apply(case, "join", OFFICER, LATER, **DETAILS["join"])
    for other in ({"enterprise": "E2"}, {"day": date(2025, 1, 11)}):
        with pytest.raises(Conflict, match="only"):
            apply(case, "join", OFFICER, LATER, **{**DETAILS["join"], "anomaly_id": "a3", **other})
    assert apply(
        case, "join", By("gateway", "system"), LATER, **{**DETAILS["join"], "anomaly_id": "a4"}
    )


def test_the_day_is_the_beijing_day() -> None:
    late_utc = datetime(2025, 1, 9, 17, 30, tzinfo=UTC)
    assert beijing_day(late_utc) == date(2025, 1, 10)
    assert open_case("a", "E1", late_utc, T0).day == date(2025, 1, 10)


def test_a_case_survives_its_json() -> None:
    case = apply(in_state("signed"), "assign", OFFICER, LATER, **DETAILS["assign"])
    case = apply(case, "answer", PLANT, LATER, **DETAILS["answer"])
    case = apply(case, "verify", OFFICER, LATER, **DETAILS["verify"])
    assert case_from_json(case_json(case)) == case
    assert case_from_json(case_json(new_case())) == new_case()


def test_every_state_action_and_verdict_has_a_chinese_label() -> None:
    assert set(STATE_LABELS) == set(STATES) and set(VERDICT_LABELS) == set(VERDICTS)
    assert set(ACTIONS) | {"open"} == set(ACTION_LABELS)
    assert STATE_LABELS["new"] == "待签收" and STATE_LABELS["closed"] == "已销号"
    assert VERDICT_LABELS["confirmed"] == "属实" and VERDICT_LABELS["false_alarm"] == "误报"
    labels = [*STATE_LABELS.values(), *ACTION_LABELS.values(), *VERDICT_LABELS.values()]
    assert all("\u4e00" <= label[0] <= "\u9fff" for label in labels)
