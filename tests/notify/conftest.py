"""Shared parts of the notification tests: a registry with a region hierarchy, anomalies and
cases to tell about, and a clock the tests move."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.anomalies.model import Anomaly, AnomalyEvent
from gateway.notify.config import Channel
from gateway.registry import Registry, RegistryFile

T0 = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 14:00 Beijing time

REGISTRY = """
[[regions]]
id = "320000"
name = "江苏省"
level = "province"

[[regions]]
id = "320500"
name = "苏州市"
parent = "320000"
level = "city"

[[regions]]
id = "320505"
name = "虎丘区"
parent = "320500"
level = "county"

[[regions]]
id = "320506"
name = "吴中区"
parent = "320500"
level = "county"

[[regions]]
id = "320100"
name = "南京市"
parent = "320000"
level = "city"

[[enterprises]]
id = "E1"
name = "苏州一厂"
region = "320505"

[[enterprises]]
id = "E2"
name = "吴中二厂"
region = "320506"

[[enterprises]]
id = "E3"
name = "南京三厂"
region = "320100"
"""


@pytest.fixture
def registry() -> Registry:
    return Registry(RegistryFile.model_validate(tomllib.loads(REGISTRY)))


def over_limit(enterprise: str = "E1", at: datetime = T0, value: float = 65.0) -> Anomaly:
    return Anomaly(
        type="over_limit",
        severity="alarm",
        enterprise=enterprise,
        subject=f"outlet:{enterprise}/DW001/w01018",
        started_at=at,
        summary="",
        evidence={
            "pollutant": "w01018",
            "limit": 50,
            "unit": "mg/L",
            "hours": [{"hour": at.isoformat(), "value": value}],
            "max": value,
        },
        rule="over_limit",
        detected_at=at + timedelta(minutes=5),
    )


def offline(enterprise: str = "E1", severity: str = "warning") -> Anomaly:
    return Anomaly(
        type="device_offline",
        severity=severity,  # type: ignore[arg-type]
        enterprise=enterprise,
        subject="mn:23040281003022",
        started_at=T0,
        summary="",
        evidence={"silence_s": 600},
        rule="device_offline",
        detected_at=T0 + timedelta(minutes=10),
    )


def event(anomaly: Anomaly, kind: str = "opened", seq: int = 1) -> AnomalyEvent:
    return AnomalyEvent(seq, kind, anomaly)  # type: ignore[arg-type]


def channel(**values: Any) -> Channel:
    base: dict[str, Any] = {"name": "c", "kind": "webhook", "url": "http://127.0.0.1:1/hook"}
    return Channel.model_validate({**base, **values})


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()
