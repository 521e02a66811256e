"""Live status for the API, from what the rules know: device contact and meter verdicts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.registry import Enterprise, Registry
from gateway.rules.offline import DeviceOffline
from gateway.rules.treatment import TreatmentNotRunning
from gateway.status.completeness import DeviceStatusPoints


class RuleStatus:
    """`StatusProvider` backed by the device_offline and treatment_not_running rules' state."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        offline: DeviceOffline,
        treatment: TreatmentNotRunning,
        daily: DeviceStatusPoints | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.offline = offline
        self.treatment = treatment
        self.daily = daily
        self.clock = clock

    def _device(self, kind: str, ident: str, subject: str | None, **extra: Any) -> dict[str, Any]:
        last = self.offline.last_contact.get(subject) if subject else None
        online = self.offline.online(subject) if subject else None
        return {
            "kind": kind,
            "id": ident,
            "online": online,
            "last_seen": last.isoformat() if last else None,
            **extra,
        }

    def _devices_of(self, ent: Enterprise) -> list[dict[str, Any]]:
        now = self.clock()
        out = [
            self._device(
                "hj212",
                o.mn,
                f"mn:{o.mn}",
                enterprise=ent.id,
                outlet=o.id,
                completeness_today=self.daily.today(o.mn, now) if self.daily else None,
            )
            for o in ent.outlets
        ]
        out += [
            self._device(
                "meter",
                m.id,
                f"meter:{ent.id}/{m.id}",
                enterprise=ent.id,
                line=m.line,
                completeness_today=self.offline.completeness(f"meter:{ent.id}/{m.id}", now),
            )
            for m in ent.meters
        ]
        out += [
            self._device(
                "gate",
                g.id,
                f"gate:{ent.id}/{g.id}",
                enterprise=ent.id,
                completeness_today=self.offline.completeness(f"gate:{ent.id}/{g.id}", now),
            )
            for g in ent.gates
        ]
        return out

    def enterprise_status(self, enterprise_id: str) -> dict[str, Any] | None:
        ent = self.registry().enterprise(enterprise_id)
        if ent is None:
            return None
        devices = self._devices_of(ent)
        meters = self.treatment.meters
        lines = []
        for line in ent.lines:
            production = [m.id for m in ent.meters if m.role == "production" and m.line == line.id]
            known = [m for m in production if meters.evidence(ent.id, m) is not None]
            lines.append(
                {
                    "line": line.id,
                    "running": any(meters.running(ent.id, m) for m in known) if known else None,
                }
            )
        facilities = [
            {
                "facility": f.id,
                "running": any(meters.running(ent.id, m) for m in f.meters) if f.meters else None,
            }
            for f in ent.facilities
        ]
        return {
            "devices": devices,
            "devices_total": len(devices),
            "devices_online": sum(1 for d in devices if d["online"]),
            "lines": lines,
            "treatment_running": facilities,
            "completeness_today": _mean(
                [
                    d["completeness_today"]
                    for d in devices
                    if d.get("completeness_today") is not None
                ]
            ),
        }

    def devices(self, state: str | None) -> list[dict[str, Any]]:
        wanted = {"online": True, "offline": False, "unknown": None}
        out = [d for ent in self.registry().data.enterprises for d in self._devices_of(ent)]
        if state is None:
            return out
        return [d for d in out if d["online"] is wanted.get(state, object())]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
