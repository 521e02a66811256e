"""Anomalies leave the store as `anomaly` points in InfluxDB (contracts.md section 2)."""

from __future__ import annotations

import json
from collections.abc import Callable

from gateway.ingest.pipeline import Pipeline
from gateway.model import Point, to_ns

from .model import AnomalyEvent


def anomaly_point(event: AnomalyEvent) -> Point:
    """The anomaly's current state; time = started_at, so updates overwrite the same point."""
    anomaly = event.anomaly
    tags = (
        ("enterprise", anomaly.enterprise),
        ("type", anomaly.type),
        ("severity", anomaly.severity),
        ("subject", anomaly.subject),
    )
    fields = (
        ("id", anomaly.id),
        ("state", anomaly.state),
        ("summary", anomaly.summary),
        ("evidence", json.dumps(anomaly.evidence, ensure_ascii=False, sort_keys=True)),
        ("ended_at", anomaly.ended_at.isoformat() if anomaly.ended_at else ""),
    )
    return Point("anomaly", tags, fields, to_ns(anomaly.started_at))


class InfluxPublisher:
    """A store listener that writes each change through the pipeline (spool, then InfluxDB)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, event: AnomalyEvent) -> None:
        self.pipeline.submit([anomaly_point(event)])


class MqttPublisher:
    """A store listener that publishes each change on
    ``{prefix}/anomalies/{enterprise}/{type}`` as ``{"event", "anomaly"}`` (QoS 1)."""

    def __init__(self, publish: Callable[[str, bytes], None], prefix: str) -> None:
        self.publish = publish
        self.prefix = prefix.rstrip("/")

    def __call__(self, event: AnomalyEvent) -> None:
        anomaly = event.anomaly
        topic = f"{self.prefix}/anomalies/{anomaly.enterprise}/{anomaly.type}"
        self.publish(topic, event.dumps().encode())
