"""A device simulator: N enterprises' data loggers (HJ 212 over TCP), meters and gates (MQTT),
replaying days with historical timestamps and scripted faults (see `script`)."""

from .devices import owner_of
from .expected import SCRIPTED_TYPES, Expected, expected_anomalies
from .plant import Plant
from .play import Simulator
from .registry import registry_toml

__all__ = [
    "SCRIPTED_TYPES",
    "Expected",
    "Plant",
    "Simulator",
    "expected_anomalies",
    "owner_of",
    "registry_toml",
]
