"""Where the API learns what is running: an interface the rule engine implements.

`RegistryStatus` is the stand-in used until the rule engine provides real status: it lists
every registered device with `online: None` (unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..registry import Enterprise, Registry


class StatusProvider(Protocol):
    def enterprise_status(self, enterprise_id: str) -> dict[str, Any] | None:
        """Live status of one enterprise (devices online, lines and treatment running,
        today's completeness), or None when the enterprise is unknown."""
        ...

    def devices(self, state: str | None) -> list[dict[str, Any]]:
        """Registered devices with `kind`, `id`, `enterprise`, `online` (bool or None) and
        `last_seen`; `state` is `online`, `offline`, `unknown` or None (all)."""
        ...


def _devices_of(ent: Enterprise) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = []
    for outlet in ent.outlets:
        devices.append(
            {"kind": "hj212", "id": outlet.mn, "enterprise": ent.id, "outlet": outlet.id}
        )
    for meter in ent.meters:
        devices.append({"kind": "meter", "id": meter.id, "enterprise": ent.id, "line": meter.line})
    for gate in ent.gates:
        devices.append({"kind": "gate", "id": gate.id, "enterprise": ent.id})
    for device in devices:
        device.update(online=None, last_seen=None)
    return devices


class RegistryStatus:
    """Every registered device, status unknown."""

    def __init__(self, registry: Callable[[], Registry]) -> None:
        self._registry = registry

    def enterprise_status(self, enterprise_id: str) -> dict[str, Any] | None:
        for ent in self._registry().data.enterprises:
            if ent.id == enterprise_id:
                lines = sorted({m.line for m in ent.meters if m.role == "production" and m.line})
                devices = _devices_of(ent)
                return {
                    "devices": devices,
                    "devices_total": len(devices),
                    "devices_online": None,
                    "lines": [{"line": line, "running": None} for line in lines],
                    "treatment_running": None,
                    "completeness_today": None,
                }
        return None

    def devices(self, state: str | None) -> list[dict[str, Any]]:
        if state not in (None, "unknown"):
            return []
        return [d for ent in self._registry().data.enterprises for d in _devices_of(ent)]
