"""The notifier as the supervisor wires it, on real files: an escalation the outbox could not
queue is not lost, and at start the rows of channels no longer configured are given up."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY as METRICS

from gateway.anomalies.store import AnomalyStore
from gateway.notify.config import NotifySection
from gateway.notify.notices import notice_id
from gateway.notify.service import Notifier
from gateway.registry import Registry
from tests.notify.conftest import Clock, offline, over_limit


def section(*names: str) -> NotifySection:
    channels: list[dict[str, Any]] = [
        {"name": name, "kind": "webhook", "url": f"http://127.0.0.1:1/{name}"} for name in names
    ]
    return NotifySection.model_validate({"channels": channels})


def errors() -> float:
    return METRICS.get_sample_value("errors_total", {"stage": "notify"}) or 0.0


def test_an_escalation_the_outbox_could_not_queue_is_queued_with_the_next_event(
    tmp_path: Path, registry: Registry, clock: Clock
) -> None:
    path = tmp_path / "notify.sqlite"
    anomalies = AnomalyStore(tmp_path / "anomalies.sqlite")
    n = Notifier(section("officers"), path, lambda: registry, clock=clock)
    anomalies.add_listener(n.on_anomaly)
    warning = offline("E1")
    anomalies.record(warning)
    assert [r[0] for r in n.outbox.rows("officers")] == [notice_id("anomaly_opened", warning.id)]
    # the file refuses new notices for a while (a real failure of its writes)
    other = sqlite3.connect(path)
    refuse = "CREATE TRIGGER refuse BEFORE INSERT ON notice BEGIN SELECT RAISE(ABORT, 'full'); END"
    other.execute(refuse)
    other.commit()
    failed_before = errors()
    alarm = replace(warning, severity="alarm", evidence={"silence_s": 3600})
    anomalies.record(alarm)  # the escalation: not queued
    assert errors() == failed_before + 1
    assert len(n.outbox.rows("officers")) == 1
    other.execute("DROP TRIGGER refuse")
    other.commit()
    other.close()
    # the next event of the same anomaly still finds it was a warning, and tells the escalation
    anomalies.record(replace(alarm, evidence={"silence_s": 7200}))
    escalated = notice_id("anomaly_escalated", warning.id)
    assert [r[0] for r in n.outbox.rows("officers")][1:] == [escalated]
    assert n.outbox.severity_before(warning.id) == "alarm"
    anomalies.record(replace(alarm, evidence={"silence_s": 9000}))
    assert len(n.outbox.rows("officers")) == 2  # once
    n.close()
    anomalies.close()


def test_at_start_the_rows_of_channels_no_longer_configured_are_given_up(
    tmp_path: Path, registry: Registry, clock: Clock
) -> None:
    path = tmp_path / "notify.sqlite"
    anomalies = AnomalyStore(tmp_path / "anomalies.sqlite")
    first = Notifier(section("svc-a", "svc-b"), path, lambda: registry, clock=clock)
    anomalies.add_listener(first.on_anomaly)
    anomalies.record(over_limit("E1", at=clock.now))
    anomalies.record(over_limit("E2", at=clock.now))
    assert (first.outbox.pending("svc-a"), first.outbox.pending("svc-b")) == (2, 2)
    first.close()
    before = METRICS.get_sample_value("notify_given_up_total", {"channel": "svc-b"}) or 0.0
    # svc-b renamed svc-c: nothing would ever send its rows
    second = Notifier(section("svc-a", "svc-c"), path, lambda: registry, clock=clock)
    assert [r[1] for r in second.outbox.rows("svc-b")] == ["given_up", "given_up"]
    assert second.outbox.pending("svc-b") == 0 and second.outbox.pending("svc-a") == 2
    assert METRICS.get_sample_value("notify_pending", {"channel": "svc-b"}) == 0
    after = METRICS.get_sample_value("notify_given_up_total", {"channel": "svc-b"})
    assert after == before + 2
    second.close()
    anomalies.close()
