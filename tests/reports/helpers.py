"""Shared makings of the report tests: anomalies, cases moved along by an officer at chosen
times, and a clock the case store stamps openings with."""

from __future__ import annotations

import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

from devkit import localstack
from gateway.anomalies.model import Anomaly
from gateway.anomalies.types import BY_NAME
from gateway.cases.model import By, Case
from gateway.cases.store import CaseStore
from gateway.influx.lineproto import encode_points
from gateway.model import Point, to_ns

CST = timezone(timedelta(hours=8))
OFFICER = By("officer.li", "officer")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def anomaly(
    type_: str,
    enterprise: str,
    started_at: datetime,
    *,
    subject: str | None = None,
    ended_at: datetime | None = None,
    severity: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> Anomaly:
    a = Anomaly(
        type=type_,
        severity=severity or BY_NAME[type_].severity,  # type: ignore[arg-type]
        enterprise=enterprise,
        subject=subject or f"outlet:{enterprise}/DW1",
        started_at=started_at,
        summary=f"{type_} of {enterprise}",
        evidence=evidence or {},
        rule=BY_NAME[type_].rule,
        detected_at=started_at,
    )
    return a.closed(ended_at) if ended_at is not None else a


def handle(
    cases: CaseStore,
    case: Case,
    at: datetime,
    *,
    sign_h: float | None = 1.0,
    verdict: str | None = None,
    close_h: float | None = None,
    deadline_h: float = 72.0,
) -> Case:
    """Sign `sign_h` hours after `at`, assign, verify with `verdict` and close `close_h`
    hours after `at`, as far as asked."""
    current = case
    if sign_h is None:
        return current
    steps: list[tuple[str, float, dict[str, Any]]] = [("sign", sign_h, {})]
    assign_at = sign_h + 0.5
    deadline = at + timedelta(hours=deadline_h)
    steps.append(("assign", assign_at, {"assignee": "一中队", "deadline": deadline}))
    if verdict is not None:
        steps.append(("verify", assign_at + 0.5, {"verdict": verdict, "note": "核查完毕"}))
        if close_h is not None:
            steps.append(("close", close_h, {}))
    for action, hours, details in steps:
        found = cases.act(current.id, action, OFFICER, at + timedelta(hours=hours), details)
        assert found is not None
        current = found
    return current


def write_points(url: str, database: str, points: list[Point]) -> None:
    """Points straight into InfluxDB 1.x (`/write`), the database created first."""
    localstack.create_database(url, database)
    for i in range(0, len(points), 5000):
        body = encode_points(points[i : i + 5000])
        query = urllib.parse.urlencode({"db": database, "precision": "ns"})
        request = urllib.request.Request(f"{url}/write?{query}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 204


def hourly(enterprise: str, outlet: str, mn: str, at: datetime, code: str, avg: float) -> Point:
    """An hourly record's value, tagged as the gateway stores it."""
    tags = (
        ("enterprise", enterprise),
        ("outlet", outlet),
        ("mn", mn),
        ("pollutant", code),
        ("interval", "hour"),
    )
    return Point("emission", tags, (("avg", avg), ("flag", "N")), to_ns(at))
