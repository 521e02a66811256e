"""What the bureau is told, as notices: an anomaly opened or escalated (warning to alarm), a case
past its deadline, a 报警 case left unsigned. Pure: callers pass the time, the registry and what
the stores hold.

`case_unsigned` is for 报警 (`alarm`) cases only, and only while nobody has answered: a 预警
case is the enterprise's to answer, and one the enterprise (or an officer for it) has answered
is being handled even before it is signed. A 预警 case escalated to 报警 while still 待签收 and
unanswered is told once the escalation sees it. `case_overdue` is for every level.

Each notice has a stable id derived from what it is about, so the same anomaly event replayed,
or the same case found again after a restart, makes the same notice (sent once):

- `anomaly_opened`, `anomaly_escalated`: the anomaly's id (an anomaly escalates once);
- `case_overdue`: the case and its deadline (a new deadline can be overdue again);
- `case_unsigned`: the case.

Cases are identified by their number and opening time together, so a case file started again
from nothing never reuses the notices of the old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..anomalies.messages import format_time, summary
from ..anomalies.model import Anomaly, AnomalyEvent
from ..anomalies.types import BY_NAME, Severity
from ..cases.model import STATE_LABELS, Case, case_json
from ..registry import Registry
from .config import EVENT_LEVEL, NoticeEvent

NO_ENTERPRISE = "未关联企业"  # anomalies of no enterprise (unregistered devices)


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell. `anomaly` / `case` are as the API shows them (Chinese summary);
    `anchor` is the anomaly the page opens for it."""

    id: str
    event: NoticeEvent
    at: datetime  # when the gateway raised it
    enterprise: str
    enterprise_name: str
    region: str
    types: tuple[str, ...]
    severity: Severity
    summary: str
    anchor: str
    anomaly: dict[str, Any] | None = None
    case: dict[str, Any] | None = None

    @property
    def level(self) -> int:
        return EVENT_LEVEL[self.event]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "at": self.at.isoformat(),
            "enterprise": self.enterprise,
            "enterprise_name": self.enterprise_name,
            "region": self.region,
            "types": list(self.types),
            "severity": self.severity,
            "summary": self.summary,
            "anchor": self.anchor,
            "anomaly": self.anomaly,
            "case": self.case,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        return cls(
            id=data["id"],
            event=data["event"],
            at=datetime.fromisoformat(data["at"]),
            enterprise=data["enterprise"],
            enterprise_name=data["enterprise_name"],
            region=data["region"],
            types=tuple(data["types"]),
            severity=data["severity"],
            summary=data["summary"],
            anchor=data["anchor"],
            anomaly=data["anomaly"],
            case=data["case"],
        )


def notice_id(event: NoticeEvent, key: str) -> str:
    return hashlib.sha256(f"{event}|{key}".encode()).hexdigest()[:24]


def _names(enterprise: str, registry: Registry | None) -> tuple[str, str]:
    """(name, region) of an enterprise as the registry has them."""
    if not enterprise:
        return NO_ENTERPRISE, ""
    ent = registry.enterprise(enterprise) if registry is not None else None
    if ent is None:
        return enterprise, ""
    return ent.name or enterprise, ent.region


def anomaly_view(anomaly: Anomaly, registry: Registry | None) -> dict[str, Any]:
    """The anomaly as `GET /api/v1/anomalies/{id}` shows it, in Chinese."""
    return {**anomaly.to_json(), "summary": summary(anomaly, "zh", registry)}


def escalated(event: AnomalyEvent, previous: Severity | None) -> bool:
    """Whether this event raises the anomaly from warning to alarm. `previous` is the severity
    seen before (None: not seen; then the type's opening severity stands in)."""
    if event.event == "opened" or event.anomaly.severity != "alarm":
        return False
    before = previous if previous is not None else BY_NAME[event.anomaly.type].severity
    return before == "warning"


def anomaly_notices(
    event: AnomalyEvent, previous: Severity | None, at: datetime, registry: Registry | None
) -> list[Notice]:
    """The notices of one change of the anomaly store (none for most updates and closings)."""
    kind: NoticeEvent
    if event.event == "opened":
        kind = "anomaly_opened"
    elif escalated(event, previous):
        kind = "anomaly_escalated"
    else:
        return []
    anomaly = event.anomaly
    name, region = _names(anomaly.enterprise, registry)
    view = anomaly_view(anomaly, registry)
    return [
        Notice(
            id=notice_id(kind, anomaly.id),
            event=kind,
            at=at,
            enterprise=anomaly.enterprise,
            enterprise_name=name,
            region=region,
            types=(anomaly.type,),
            severity=anomaly.severity,
            summary=view["summary"],
            anchor=anomaly.id,
            anomaly=view,
        )
    ]


def _case_key(case: Case) -> str:
    return f"{case.id}|{case.opened_at.astimezone(UTC).isoformat()}"


def overdue_id(case: Case) -> str:
    deadline = case.deadline.astimezone(UTC).isoformat() if case.deadline else ""
    return notice_id("case_overdue", f"{_case_key(case)}|{deadline}")


def unsigned_id(case: Case) -> str:
    return notice_id("case_unsigned", _case_key(case))


def unsigned_for(case: Case, now: datetime, after: timedelta) -> bool:
    """A 报警 case still 待签收, with no answer, longer than `after`."""
    return (
        case.state == "new"
        and case.level == "alarm"
        and case.answer is None
        and now - case.opened_at > after
    )


def case_view(case: Case, now: datetime, registry: Registry | None) -> dict[str, Any]:
    """The case as `GET /api/v1/cases/{id}` shows it (without `actions`, which are a caller's)."""
    ent = registry.enterprise(case.enterprise) if registry is not None else None
    return {
        **case_json(case),
        "enterprise_name": ent.name if ent is not None else None,
        "state_label": STATE_LABELS[case.state],
        "overdue": case.overdue(now),
    }


def case_notice(
    kind: NoticeEvent,
    case: Case,
    now: datetime,
    anomalies: Sequence[Anomaly],
    registry: Registry | None,
    unsigned_after: timedelta = timedelta(0),
) -> Notice:
    """A `case_overdue` or `case_unsigned` notice; `anomalies` are those of the case the store
    still holds (their types and severity route it)."""
    name, region = _names(case.enterprise, registry)
    types = tuple(dict.fromkeys(a.type for a in anomalies))
    severity: Severity = (
        "alarm" if not anomalies or any(a.severity == "alarm" for a in anomalies) else "warning"
    )
    where = f"{name}的案件 {case.id}（{case.day.isoformat()}）"
    if kind == "case_overdue":
        assert case.deadline is not None
        text = (
            f"{where}已超过处置期限 {format_time(case.deadline)}，"
            f"当前状态：{STATE_LABELS[case.state]}，核查人：{case.assignee or '未指定'}。"
        )
        nid = overdue_id(case)
    else:
        hours = unsigned_after.total_seconds() / 3600
        text = (
            f"{where}立案于 {format_time(case.opened_at)}，已超过 {hours:g} 小时仍未签收，"
            "请上一级督办。"
        )
        nid = unsigned_id(case)
    return Notice(
        id=nid,
        event=kind,
        at=now,
        enterprise=case.enterprise,
        enterprise_name=name,
        region=region,
        types=types,
        severity=severity,
        summary=text,
        anchor=case.anomalies[0] if case.anomalies else "",
        case=case_view(case, now, registry),
    )
