"""The rule engine: feeds durable points and device events to every rule, records what they
find in the anomaly store, and ticks the wall-clock rules.

Rules see points only after the points are durable (a pipeline listener), in arrival order.
`detected_at` is the wall clock; everything else an anomaly says comes from event time, so a
replayed day yields the same anomalies, which the store then ignores as unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

import structlog

from gateway import metrics
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.model import Point

from .base import DeviceEvent, Rule

log = structlog.get_logger("gateway.rules")


class RuleEngine:
    def __init__(
        self,
        store: AnomalyStore,
        rules: Sequence[Rule],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tick_s: float = 1.0,
    ) -> None:
        self.store = store
        self.rules = list(rules)
        self.clock = clock
        self.tick_s = tick_s
        by_rule: dict[str, list[Anomaly]] = {}
        for anomaly in store.open_anomalies():
            by_rule.setdefault(anomaly.rule, []).append(anomaly)
        for rule in self.rules:
            rule.restore(by_rule.get(rule.name, []))

    def on_points(self, points: Sequence[Point]) -> None:
        """Pipeline listener: durable points, each rule given only the measurements it wants."""
        now = self.clock()
        present = {p.measurement for p in points}
        for rule in self.rules:
            wanted = rule.measurements & present
            if not wanted:
                continue
            mine = points if wanted == present else [p for p in points if p.measurement in wanted]
            self._record(rule, partial(rule.on_points, mine, now))

    def on_device_event(self, event: DeviceEvent) -> None:
        for rule in self.rules:
            self._record(rule, partial(rule.on_device_event, event))

    def tick(self) -> None:
        now = self.clock()
        for rule in self.rules:
            self._record(rule, partial(rule.on_tick, now))

    def _record(self, rule: Rule, run: Callable[[], list[Anomaly]]) -> None:
        try:
            for anomaly in run():
                event = self.store.record(anomaly)
                if event is not None:
                    metrics.ANOMALY_EVENTS.labels(type=anomaly.type, event=event.event).inc()
                    log.info(
                        "anomaly",
                        change=event.event,
                        type=anomaly.type,
                        enterprise=anomaly.enterprise,
                        subject=anomaly.subject,
                        summary=anomaly.summary,
                    )
        except Exception:  # one rule's bug must not stop ingestion or the other rules
            metrics.ERRORS_TOTAL.labels(stage=f"rule_{rule.name}").inc()
            log.exception("rule failed", rule=rule.name)
