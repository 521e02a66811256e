"""A device simulator: N enterprises' data loggers (HJ 212 over TCP), meters and gates (MQTT),
replaying days with historical timestamps and scripted faults (see `script`)."""

from devkit.simulator.devices import owner_of
from devkit.simulator.expected import SCRIPTED_TYPES, Expected, expected_anomalies
from devkit.simulator.plant import Plant
from devkit.simulator.play import Simulator
from devkit.simulator.registry import registry_toml

__all__ = [
    "SCRIPTED_TYPES",
    "Expected",
    "Plant",
    "Simulator",
    "expected_anomalies",
    "owner_of",
    "registry_toml",
]
