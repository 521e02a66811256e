"""The anomaly record (docs/contracts.md section 3). Depends on nothing but the standard library
and the list of types."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from .types import FAMILIES, Severity

State = Literal["open", "closed"]
EventKind = Literal["opened", "updated", "closed"]


def anomaly_id(type_: str, subject: str, started_at: datetime) -> str:
    """Deterministic id: the same anomaly found again (a replay) has the same id."""
    key = f"{type_}|{subject}|{started_at.isoformat()}".encode()
    return hashlib.sha256(key).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An interval with evidence. Times are aware; `started_at`/`ended_at` are event time."""

    type: str
    severity: Severity
    enterprise: str
    subject: str
    started_at: datetime
    summary: str
    evidence: dict[str, Any]
    rule: str
    detected_at: datetime
    state: State = "open"
    ended_at: datetime | None = None
    id: str = field(default="")
    as_of: datetime | None = None  # event time the rule had seen when it said this

    @property
    def judged_until(self) -> datetime:
        """How far in event time this version of the anomaly reaches (orders replays)."""
        return self.as_of or self.ended_at or self.started_at

    def __post_init__(self) -> None:
        if self.type not in FAMILIES:
            raise ValueError(f"unknown anomaly type {self.type!r}")
        if not self.id:
            object.__setattr__(self, "id", anomaly_id(self.type, self.subject, self.started_at))

    @property
    def family(self) -> str:
        return FAMILIES[self.type]

    def closed(self, ended_at: datetime, summary: str | None = None, **evidence: Any) -> Anomaly:
        return replace(
            self,
            state="closed",
            ended_at=ended_at,
            as_of=max(ended_at, self.judged_until),
            summary=summary or self.summary,
            evidence={**self.evidence, **evidence},
        )

    def updated(self, as_of: datetime, summary: str | None = None, **evidence: Any) -> Anomaly:
        """A new version as judged up to `as_of` (event time)."""
        return replace(
            self,
            as_of=as_of,
            summary=summary or self.summary,
            evidence={**self.evidence, **evidence},
        )

    def same_content(self, other: Anomaly) -> bool:
        """Equal but for `detected_at` (what a replay changes)."""
        return replace(self, detected_at=other.detected_at) == other

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "family": self.family,
            "severity": self.severity,
            "enterprise": self.enterprise,
            "subject": self.subject,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "detected_at": self.detected_at.isoformat(),
            "summary": self.summary,
            "evidence": self.evidence,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Anomaly:
        return cls(
            id=data["id"],
            type=data["type"],
            severity=data["severity"],
            enterprise=data["enterprise"],
            subject=data["subject"],
            state=data["state"],
            started_at=datetime.fromisoformat(data["started_at"]),
            ended_at=datetime.fromisoformat(data["ended_at"]) if data.get("ended_at") else None,
            detected_at=datetime.fromisoformat(data["detected_at"]),
            summary=data["summary"],
            evidence=data["evidence"],
            rule=data["rule"],
            as_of=datetime.fromisoformat(data["as_of"]) if data.get("as_of") else None,
        )

    def stored_json(self) -> dict[str, Any]:
        """`to_json` plus what the store needs to order replays."""
        return {**self.to_json(), "as_of": self.as_of.isoformat() if self.as_of else None}


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """One change of the stream: `seq` orders events and is the SSE event id."""

    seq: int
    event: EventKind
    anomaly: Anomaly

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "anomaly": self.anomaly.to_json()}

    def dumps(self) -> str:
        return json.dumps(
            {"event": self.event, "anomaly": self.anomaly.to_json()}, ensure_ascii=False
        )
