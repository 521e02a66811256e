"""The `[notify]` section: channels (webhook, WeCom or DingTalk robot), what each is sent, and
the outbox's bounds. Validated at load; `check_references` checks what only the registry and the
environment can tell (regions, enterprises, secret variables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..anomalies.types import FAMILIES, Severity
from ..registry import Registry

Kind = Literal["webhook", "wecom", "dingtalk"]
NoticeEvent = Literal["anomaly_opened", "anomaly_escalated", "case_overdue", "case_unsigned"]

EVENTS: tuple[NoticeEvent, ...] = (
    "anomaly_opened",
    "anomaly_escalated",
    "case_overdue",
    "case_unsigned",
)
# the level a notice goes to: the officers in charge, then the level above when a case waits
EVENT_LEVEL: dict[NoticeEvent, int] = {
    "anomaly_opened": 1,
    "anomaly_escalated": 1,
    "case_overdue": 1,
    "case_unsigned": 2,
}


class Channel(BaseModel):
    """One receiver and what it is sent. Empty filters let everything of its level through."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Kind
    url: str = Field(min_length=8, description="http(s) address; robots: the webhook with key")
    secret_env: str | None = Field(
        None,
        description="variable holding the webhook's HMAC key or the DingTalk robot's 加签 secret",
    )
    level: Literal[1, 2] = Field(
        1, description="1: anomalies and overdue cases; 2: cases left unsigned (case_unsigned)"
    )
    events: list[NoticeEvent] = Field(
        [], description="what it is sent; empty: every event of its level"
    )
    regions: list[str] = Field([], description="enterprises in these regions or under them")
    enterprises: list[str] = []
    types: list[str] = Field([], description="anomaly types (a case: any of its anomalies)")
    severities: list[Severity] = []

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
            raise ValueError("url must be an http:// or https:// address")
        return value

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown anomaly types: {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _level_events(self) -> Channel:
        if self.kind == "wecom" and self.secret_env:
            raise ValueError(
                f"channel {self.name!r}: a WeCom robot takes no secret (its key is in the url)"
            )
        wrong = [e for e in self.events if EVENT_LEVEL[e] != self.level]
        if wrong:
            raise ValueError(
                f"channel {self.name!r} of level {self.level} cannot take {', '.join(wrong)}:"
                " case_unsigned goes to level 2 only, every other event to level 1 only"
            )
        return self

    def takes(self, event: NoticeEvent) -> bool:
        return EVENT_LEVEL[event] == self.level and (not self.events or event in self.events)


class NotifySection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="nothing is sent without channels")
    link_base: str = Field(
        "http://127.0.0.1:9280/", description="the page's address; links add #anomaly=<id>"
    )
    max_pending: int = Field(
        10_000, ge=1, le=10_000_000, description="undelivered notices per channel"
    )
    unsigned_after_h: float = Field(
        4.0, gt=0, description="a 报警 case still 待签收 and unanswered this long notifies level 2"
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="per request")
    retry_initial_s: float = Field(1.0, gt=0, description="first wait after a failed delivery")
    retry_max_s: float = Field(600.0, gt=0, description="longest wait between attempts")
    give_up_after_h: float = Field(24.0, gt=0, description="a notice this old is given up")
    keep_delivered_h: float = Field(
        168.0, ge=0, description="delivered rows are kept this long (at most max_pending)"
    )
    escalation_interval_s: float = Field(60.0, gt=0, description="how often cases are checked")
    channels: list[Channel] = []

    @field_validator("link_base")
    @classmethod
    def _link(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("link_base must be an http:// or https:// address")
        return value

    @model_validator(mode="after")
    def _unique(self) -> NotifySection:
        names = [c.name for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names appear twice: {', '.join(twice)}")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self


def check_references(path: Path, section: NotifySection, registry: Registry) -> list[str]:
    """Problems the file alone cannot show: regions missing from the registry's hierarchy,
    enterprises it does not hold, secret variables not set."""
    problems: list[str] = []
    regions = registry.regions.regions
    for i, channel in enumerate(section.channels):
        key = f"{path}: notify.channels[{i}]"
        for region in channel.regions:
            if region not in regions and not any(
                e.region == region for e in registry.data.enterprises
            ):
                problems.append(f"{key}.regions: region {region!r} is not in the registry")
        for enterprise in channel.enterprises:
            if registry.enterprise(enterprise) is None:
                problems.append(
                    f"{key}.enterprises: enterprise {enterprise!r} is not in the registry"
                )
        if channel.secret_env and channel.secret_env not in os.environ:
            problems.append(
                f"{key}.secret_env: environment variable {channel.secret_env} is not set"
            )
    return problems
