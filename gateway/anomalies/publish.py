"""Anomalies leave the store as `anomaly` points in InfluxDB (docs/contracts.md section 2) and as
MQTT messages; `Publishers` hands each change to all of them, a failing one isolated."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import structlog

from gateway import metrics
from gateway.ingest.pipeline import Pipeline
from gateway.model import Point, to_ns
from gateway.ratelimit import LogLimiter

from ..registry import Registry
from .messages import summary
from .model import AnomalyEvent

log = structlog.get_logger("gateway.anomalies")


def anomaly_point(event: AnomalyEvent, registry: Registry | None = None) -> Point:
    """The anomaly's current state; time = started_at, so updates overwrite the same point.

    Only what never changes during an anomaly is a tag: `severity` is a field, so an anomaly
    that escalates (warning to alarm) stays one series whose latest point is its state. The
    `summary` is the Chinese one of the message catalogue (dashboards are read by officers),
    with the registry's names when a registry is given."""
    anomaly = event.anomaly
    tags = (
        ("enterprise", anomaly.enterprise),
        ("type", anomaly.type),
        ("subject", anomaly.subject),
    )
    fields = (
        ("id", anomaly.id),
        ("severity", anomaly.severity),
        ("state", anomaly.state),
        ("summary", summary(anomaly, "zh", registry)),
        ("evidence", json.dumps(anomaly.evidence, ensure_ascii=False, sort_keys=True)),
        ("ended_at", anomaly.ended_at.isoformat() if anomaly.ended_at else ""),
    )
    return Point("anomaly", tags, fields, to_ns(anomaly.started_at))


class InfluxPublisher:
    """A store listener that writes each change through the pipeline (spool, then InfluxDB)."""

    def __init__(self, pipeline: Pipeline, registry: Callable[[], Registry] | None = None) -> None:
        self.pipeline = pipeline
        self.registry = registry

    def __call__(self, event: AnomalyEvent) -> None:
        registry = self.registry() if self.registry is not None else None
        self.pipeline.submit([anomaly_point(event, registry)])


class MqttPublisher:
    """A store listener that publishes each change on
    ``{prefix}/anomalies/{enterprise}/{type}`` as ``{"event", "anomaly"}`` (QoS 1). The
    anomaly's `summary` is the Chinese one of the message catalogue (with the registry's names
    when given), `summary_en` the English one."""

    def __init__(
        self,
        publish: Callable[[str, bytes], None],
        prefix: str,
        registry: Callable[[], Registry] | None = None,
    ) -> None:
        self.publish = publish
        self.prefix = prefix.rstrip("/")
        self.registry = registry

    def __call__(self, event: AnomalyEvent) -> None:
        anomaly = event.anomaly
        registry = self.registry() if self.registry is not None else None
        body = anomaly.to_json() | {
            "summary": summary(anomaly, "zh", registry),
            "summary_en": summary(anomaly, "en", registry),
        }
        topic = f"{self.prefix}/anomalies/{anomaly.enterprise}/{anomaly.type}"
        payload = json.dumps({"event": event.event, "anomaly": body}, ensure_ascii=False)
        self.publish(topic, payload.encode())


class Publishers:
    """One store listener for every publisher: each gets every event in the order added. One
    that raises is counted in `errors_total{stage="anomaly_<name>"}` and logged (once a
    minute per publisher at most), and the others still get the event."""

    def __init__(self, log_interval_s: float = 60.0) -> None:
        self.publishers: list[tuple[str, Callable[[AnomalyEvent], None]]] = []
        self._limiter = LogLimiter(log_interval_s)

    def add(self, name: str, publisher: Callable[[AnomalyEvent], None]) -> None:
        self.publishers.append((name, publisher))

    def __call__(self, event: AnomalyEvent) -> None:
        for name, publisher in self.publishers:
            try:
                publisher(event)
            except Exception:
                metrics.ERRORS_TOTAL.labels(stage=f"anomaly_{name}").inc()
                suppressed = self._limiter.allow(name, time.monotonic())
                if suppressed >= 0:
                    log.exception(
                        "anomaly publisher failed; the others still publish",
                        publisher=name,
                        anomaly=event.anomaly.id,
                        suppressed_since_last=suppressed,
                    )
