"""The `anomaly` point: what is a tag, what is a field, and which point a version overwrites."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.anomalies.model import Anomaly, AnomalyEvent
from gateway.anomalies.publish import anomaly_point
from gateway.model import to_ns

T0 = datetime(2026, 4, 8, tzinfo=UTC)


def offline() -> Anomaly:
    return Anomaly(
        type="device_offline",
        severity="warning",
        enterprise="E1",
        subject="mn:23040281003022",
        started_at=T0,
        summary="Data logger 23040281003022 has sent nothing since 2026-04-08 00:00 UTC.",
        evidence={"silence_s": 600},
        rule="device_offline",
        detected_at=T0 + timedelta(minutes=10),
    )


def test_severity_is_a_field_so_an_escalation_overwrites_the_same_point() -> None:
    opened = offline()
    escalated = replace(opened, severity="alarm").updated(T0 + timedelta(hours=1))
    closed = escalated.closed(T0 + timedelta(minutes=70))
    events = [
        AnomalyEvent(1, "opened", opened),
        AnomalyEvent(2, "updated", escalated),
        AnomalyEvent(3, "closed", closed),
    ]
    points = [anomaly_point(e) for e in events]
    assert {(p.measurement, p.tags, p.event_time_ns) for p in points} == {
        (
            "anomaly",
            (("enterprise", "E1"), ("type", "device_offline"), ("subject", "mn:23040281003022")),
            to_ns(T0),
        )
    }
    assert [p.field("severity") for p in points] == ["warning", "alarm", "alarm"]
    assert [p.field("state") for p in points] == ["open", "open", "closed"]
    assert [name for name, _ in points[-1].fields] == [
        "id",
        "severity",
        "state",
        "summary",
        "evidence",
        "ended_at",
    ]
    assert points[-1].field("id") == opened.id
    assert "离线" in str(points[-1].field("summary"))  # Chinese, from the catalogue
    assert points[-1].field("evidence") == '{"silence_s": 600}'
    assert points[0].field("ended_at") == ""
    assert points[-1].field("ended_at") == "2026-04-08T01:10:00+00:00"
