"""A device simulator: N enterprises' data loggers (HJ 212 over TCP), meters and gates (MQTT),
replaying days with historical timestamps and scripted faults (see `plant`)."""

from .plant import SCRIPTED_TYPES, Expected, Plant, expected_anomalies, owner_of, registry_toml
from .play import Simulator

__all__ = [
    "SCRIPTED_TYPES",
    "Expected",
    "Plant",
    "Simulator",
    "expected_anomalies",
    "owner_of",
    "registry_toml",
]
