"""The handling of an anomaly by the bureau, as a case (案件): its states, who may move it on,
and the pure function that does (`apply`). Depends on nothing but the standard library.

States, in order: 待签收 `new` (opened for an anomaly) → 已签收 `signed` (an officer took it)
→ 核查中 `checking` (assigned to an officer or a team, with a deadline) → 企业已反馈 `answered`
(the enterprise's explanation, with links to attachments) → 已核实 `verified` (a verdict and a
note) → 已销号 `closed`. `reopen` (with a reason) takes a verified or closed case back to
`checking`; `join` adds another anomaly of the same enterprise and Beijing day.

A case's `level` is the highest severity of its anomalies: 预警 `warning`, the enterprise's to
answer, or 报警 `alarm`, the bureau's to handle. `escalate` (the gateway's own action) raises a
预警 case to 报警 when one of its anomalies becomes an alarm; the state and any answer stay. The
enterprise may answer from the moment a case opens: an answer given while the case is 待签收 or
已签收 is kept and the state stays; one given in 核查中 moves it to 企业已反馈.

Who may act (`TRANSITIONS`): officers and admins do everything but answer for themselves;
an enterprise account only answers, and only on cases of its own enterprises. An officer or
admin may also record the answer on the enterprise's behalf (one given on paper, by phone or
during the site visit): the answer then names who recorded it and says `on_behalf`. Viewers
read only. Roles are checked before states: an action the role may never take is
`Forbidden`, one the role may take but not in this state is `Conflict`.

A case is overdue when its deadline has passed and it is neither verified nor closed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

State = Literal["new", "signed", "checking", "answered", "verified", "closed"]
Action = Literal["sign", "assign", "answer", "verify", "close", "reopen", "join", "escalate"]
Level = Literal["warning", "alarm"]
Verdict = Literal["confirmed", "device_fault", "normal_operation", "false_alarm", "other"]

STATE_LABELS: dict[State, str] = {
    "new": "待签收",
    "signed": "已签收",
    "checking": "核查中",
    "answered": "企业已反馈",
    "verified": "已核实",
    "closed": "已销号",
}
# `open` is no action anyone takes: it names the first history row of every case
ACTION_LABELS: dict[str, str] = {
    "open": "立案",
    "sign": "签收",
    "assign": "分派核查",
    "answer": "企业反馈",
    "verify": "核实",
    "close": "销号",
    "reopen": "重新核查",
    "join": "并案",
    "escalate": "升级为报警",
}
LEVEL_LABELS: dict[Level, str] = {"warning": "预警", "alarm": "报警"}
VERDICT_LABELS: dict[Verdict, str] = {
    "confirmed": "属实",
    "device_fault": "设备故障",
    "normal_operation": "工况正常",
    "false_alarm": "误报",
    "other": "其他",
}

STATES: tuple[State, ...] = tuple(STATE_LABELS)
ACTIONS: tuple[Action, ...] = (
    "sign",
    "assign",
    "answer",
    "verify",
    "close",
    "reopen",
    "join",
    "escalate",
)
VERDICTS: tuple[Verdict, ...] = tuple(VERDICT_LABELS)
DONE: frozenset[State] = frozenset({"verified", "closed"})  # never overdue

MAX_TEXT = 10_000
MAX_NOTE = 2_000
MAX_NAME = 200
MAX_ATTACHMENTS = 20
MAX_URL = 2_000


@dataclass(frozen=True, slots=True)
class Transition:
    """An action: the states it starts from, the state it leads to (None: the same), and the
    roles that may take it (`system`: the gateway itself, never an account)."""

    from_states: frozenset[State]
    to: State | None
    roles: frozenset[str]


_HANDLERS = frozenset({"officer", "admin"})
_OPEN: frozenset[State] = frozenset({"new", "signed", "checking", "answered"})
TRANSITIONS: dict[Action, Transition] = {
    "sign": Transition(frozenset({"new"}), "signed", _HANDLERS),
    "assign": Transition(frozenset({"signed", "checking"}), "checking", _HANDLERS),
    # from new or signed the state stays (see the module's docstring)
    "answer": Transition(_OPEN, "answered", _HANDLERS | {"enterprise"}),
    "verify": Transition(frozenset({"checking", "answered"}), "verified", _HANDLERS),
    "close": Transition(frozenset({"verified"}), "closed", _HANDLERS),
    "reopen": Transition(frozenset({"verified", "closed"}), "checking", _HANDLERS),
    "join": Transition(_OPEN, None, _HANDLERS | {"system"}),
    "escalate": Transition(_OPEN, None, frozenset({"system"})),
}


class Actor(Protocol):
    """Who acts: an API `Caller`, or `By` (the gateway, tests)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def enterprises(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class By:
    name: str
    role: str
    enterprises: tuple[str, ...] = ()


SYSTEM = By("gateway", "system")


class Refused(Exception):
    """A transition that is not made."""


class Forbidden(Refused):
    """The actor's role may not take the action (or not on this enterprise's case)."""


class Conflict(Refused):
    """The case's state (or content) does not allow the action now."""


class BadDetails(Refused, ValueError):
    """The action's details are missing, unknown or out of range."""


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    attachments: tuple[str, ...]
    by: str
    at: datetime
    on_behalf: bool  # recorded by an officer or admin for the enterprise


@dataclass(frozen=True, slots=True)
class Finding:
    verdict: Verdict
    note: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Case:
    """One case; `id` is 0 until the store gives it one."""

    id: int
    enterprise: str
    day: date  # Beijing day of its first anomaly
    anomalies: tuple[str, ...]
    opened_at: datetime
    updated_at: datetime
    state: State = "new"
    signed_by: str | None = None
    assignee: str | None = None
    deadline: datetime | None = None
    answer: Answer | None = None
    finding: Finding | None = None
    reopened: int = 0
    level: Level = "alarm"

    def overdue(self, now: datetime) -> bool:
        return self.deadline is not None and self.deadline < now and self.state not in DONE


def case_json(case: Case) -> dict[str, Any]:
    """The case as JSON values (times and dates ISO 8601)."""
    return json.loads(json.dumps(asdict(case), default=lambda v: v.isoformat()))  # type: ignore[no-any-return]


def case_from_json(data: dict[str, Any]) -> Case:
    a, f = data.get("answer"), data.get("finding")
    return Case(
        id=data["id"],
        enterprise=data["enterprise"],
        day=date.fromisoformat(data["day"]),
        anomalies=tuple(data["anomalies"]),
        opened_at=datetime.fromisoformat(data["opened_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        state=data["state"],
        signed_by=data["signed_by"],
        assignee=data["assignee"],
        deadline=datetime.fromisoformat(data["deadline"]) if data["deadline"] else None,
        answer=None
        if a is None
        else Answer(a["text"], tuple(a["attachments"]), a["by"], _time(a["at"]), a["on_behalf"]),
        finding=None if f is None else Finding(f["verdict"], f["note"], f["by"], _time(f["at"])),
        reopened=data["reopened"],
        level=data.get("level", "alarm"),  # cases written before levels: alarms only
    )


def beijing_day(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


def open_case(
    anomaly_id: str, enterprise: str, started_at: datetime, at: datetime, level: Level = "alarm"
) -> Case:
    """A new case (state `new`) for one anomaly, on the Beijing day it started."""
    _aware(at, "at")
    return Case(0, enterprise, beijing_day(started_at), (anomaly_id,), at, at, level=level)


# What each action takes: name -> (required, kind); kinds: text, note, name, time, urls,
# verdict, date, level. Anything else in the details is refused.
_DETAILS: dict[Action, dict[str, tuple[bool, str]]] = {
    "sign": {"note": (False, "note")},
    "assign": {"assignee": (True, "name"), "deadline": (True, "time"), "note": (False, "note")},
    "answer": {"text": (True, "text"), "attachments": (False, "urls")},
    "verify": {"verdict": (True, "verdict"), "note": (True, "note")},
    "close": {"note": (False, "note")},
    "reopen": {
        "reason": (True, "note"),
        "assignee": (False, "name"),
        "deadline": (False, "time"),
    },
    "join": {
        "anomaly_id": (True, "name"),
        "enterprise": (True, "id"),
        "day": (True, "date"),
        "level": (False, "level"),
    },
    "escalate": {"anomaly_id": (True, "name")},
}
_LIMITS = {"text": MAX_TEXT, "note": MAX_NOTE, "name": MAX_NAME}


def _value(action: str, key: str, kind: str, value: Any) -> Any:
    where = f"{action}: {key}"
    if kind in _LIMITS or kind == "id":
        if not isinstance(value, str):
            raise BadDetails(f"{where} must be text")
        value = value.strip()
        if kind != "id" and not value:
            raise BadDetails(f"{where} must not be empty")
        if len(value) > _LIMITS.get(kind, MAX_NAME):
            raise BadDetails(f"{where} is longer than {_LIMITS.get(kind, MAX_NAME)} characters")
        return value
    if kind == "time":
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise BadDetails(f"{where} must be a time with its offset")
        return value
    if kind == "date":
        if not isinstance(value, date) or isinstance(value, datetime):
            raise BadDetails(f"{where} must be a date")
        return value
    if kind == "level":
        if value not in LEVEL_LABELS:
            raise BadDetails(f"{where} must be one of {', '.join(LEVEL_LABELS)}")
        return value
    if kind == "verdict":
        if value not in VERDICTS:
            raise BadDetails(f"{where} must be one of {', '.join(VERDICTS)}")
        return value
    # urls
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise BadDetails(f"{where} must be a list of links")
    links = tuple(str(v).strip() for v in value)
    if len(links) > MAX_ATTACHMENTS:
        raise BadDetails(f"{where}: at most {MAX_ATTACHMENTS} links")
    for link in links:
        if not link.startswith(("http://", "https://")) or len(link) > MAX_URL or " " in link:
            raise BadDetails(f"{where}: {link[:80]!r} is not an http(s) link")
    return links


def details_of(action: Action, details: dict[str, Any]) -> dict[str, Any]:
    """The details checked (`BadDetails` otherwise), None values left out."""
    spec = _DETAILS[action]
    unknown = sorted(set(details) - set(spec))
    if unknown:
        raise BadDetails(f"{action}: unknown details {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, (required, kind) in spec.items():
        value = details.get(key)
        if value is None:
            if required:
                raise BadDetails(f"{action}: {key} is required")
            continue
        out[key] = _value(action, key, kind, value)
    return out


def details_json(details: dict[str, Any]) -> dict[str, Any]:
    """Checked details as JSON values (times and dates ISO 8601, links a list)."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def apply(case: Case, action: str, by: Actor, at: datetime, **details: Any) -> Case:
    """The case after `by` takes `action` at `at` with `details`; `Forbidden` (role),
    `Conflict` (state) or `BadDetails` when refused."""
    if action not in TRANSITIONS:
        raise BadDetails(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    act: Action = action  # one of ACTIONS: checked above
    rule = TRANSITIONS[act]
    if by.role not in rule.roles:
        raise Forbidden(f"the {by.role} role may not {act} a case")
    if by.role == "enterprise" and case.enterprise not in by.enterprises:
        raise Forbidden(f"{act}: an enterprise account acts only on its own enterprises' cases")
    if case.state not in rule.from_states:
        allowed = ", ".join(s for s in STATES if s in rule.from_states)
        raise Conflict(f"cannot {act} a case that is {case.state} (only when {allowed})")
    _aware(at, "at")
    d = details_of(act, details)
    if "deadline" in d and d["deadline"] <= at:
        raise BadDetails(f"{act}: the deadline must lie in the future")
    new = replace(case, state=rule.to or case.state, updated_at=at)
    if act == "sign":
        return replace(new, signed_by=by.name)
    if act == "assign":
        return replace(new, assignee=d["assignee"], deadline=d["deadline"])
    if act == "answer":
        links = d.get("attachments", ())
        answer = Answer(d["text"], links, by.name, at, on_behalf=by.role != "enterprise")
        early = case.state in ("new", "signed")  # before the check: the state stays
        return replace(new, answer=answer, state=case.state if early else new.state)
    if act == "verify":
        return replace(new, finding=Finding(d["verdict"], d["note"], by.name, at))
    if act == "reopen":
        return replace(
            new,
            finding=None,
            reopened=case.reopened + 1,
            assignee=d.get("assignee", case.assignee),
            deadline=d.get("deadline", case.deadline),
        )
    if act == "join":
        if d["anomaly_id"] in case.anomalies:
            raise Conflict(f"anomaly {d['anomaly_id']!r} is already in case {case.id}")
        if d["enterprise"] != case.enterprise or d["day"] != case.day:
            raise Conflict(
                f"case {case.id} holds anomalies of enterprise {case.enterprise!r} on"
                f" {case.day.isoformat()} (Beijing time) only"
            )
        level = "alarm" if "alarm" in (case.level, d.get("level")) else case.level
        return replace(new, anomalies=(*case.anomalies, d["anomaly_id"]), level=level)
    if act == "escalate":
        if d["anomaly_id"] not in case.anomalies:
            raise Conflict(f"anomaly {d['anomaly_id']!r} is not in case {case.id}")
        if case.level == "alarm":
            raise Conflict(f"case {case.id} is an alarm already")
        return replace(new, level="alarm")
    return new  # close


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _aware(at: datetime, name: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {at.isoformat()}")
