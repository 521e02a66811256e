"""The thresholds each anomaly type is judged by, as the registry sets them for the
enterprises of a scope (pure): what an administrator reads beside a type's false-alarm share.

Each row is one key with one value in force and the places (outlets, meters, lines,
enterprises) that use it; a value not set in the registry is the rule's default. Values
read from the rules' own defaults and the registry's fields, nothing copied. Beside the keys
named here, every registry field whose description starts with the type's name and a colon
(`"values_pinned: hours in a window"`) is shown for that type.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel

from ..registry import Enterprise
from ..rules.auth import QUIET_AFTER_S
from ..rules.data_gap import DUE_AFTER_S
from ..rules.offline import ALARM_AFTER_S, GATE_OFFLINE_S, HJ212_OFFLINE_S, METER_OFFLINE_S
from ..rules.suspicious import SuspiciousData
from .model import Threshold

SAMPLE = 5

# (key, value as shown, default?, place)
Use = tuple[str, str, bool, str]


def _number(value: float) -> str:
    return f"{value:g}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _suspicious_default(name: str) -> float:
    return float(inspect.signature(SuspiciousData).parameters[name].default)


def _group(uses: Iterable[Use]) -> list[Threshold]:
    groups: dict[tuple[str, str, bool], list[str]] = {}
    for key, value, default, place in uses:
        groups.setdefault((key, value, default), []).append(place)
    return [
        Threshold(key=k, value=v, default=d, places=len(p), sample=sorted(p)[:SAMPLE])
        for (k, v, d), p in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1])))
    ]


def _optional(key: str, set_: float | None, default: float, place: str) -> Use:
    return (key, _seconds(set_ if set_ is not None else default), set_ is None, place)


def _device_offline(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        for o in e.outlets:
            place = f"{e.id}/{o.id}"
            yield _optional("outlets.offline_after_s", o.offline_after_s, HJ212_OFFLINE_S, place)
            yield ("alarm_after_s", _seconds(ALARM_AFTER_S), True, place)
        for m in e.meters:
            place = f"{e.id}/{m.id}"
            yield _optional("meters.offline_after_s", m.offline_after_s, METER_OFFLINE_S, place)
            yield ("alarm_after_s", _seconds(ALARM_AFTER_S), True, place)
        for g in e.gates:
            place = f"{e.id}/{g.id}"
            yield _optional("gates.offline_after_s", g.offline_after_s, GATE_OFFLINE_S, place)
            quiet = ", ".join(g.quiet_hours) or "[]"
            yield ("gates.quiet_hours", quiet, "quiet_hours" not in g.model_fields_set, place)
            yield ("alarm_after_s", _seconds(ALARM_AFTER_S), True, place)


def _data_gap(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        for o in e.outlets:
            place = f"{e.id}/{o.id}"
            yield ("[rules] hourly_due_after_s", _seconds(DUE_AFTER_S), True, place)


def _over_limit(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        for o in e.outlets:
            for code, limit in o.pollutants.items():
                shown = _number(limit.limit) + (f" {limit.unit}" if limit.unit else "")
                if limit.ref_o2 is not None:
                    shown += f" (O2 {_number(limit.ref_o2)} %)"
                yield (f"outlets.pollutants.{code}.limit", shown, False, f"{e.id}/{o.id}")


def _suspicious(ents: Sequence[Enterprise]) -> Iterable[Use]:
    constant, zeros = _suspicious_default("constant_s"), _suspicious_default("persist_s")
    for e in ents:
        for o in e.outlets:
            place = f"{e.id}/{o.id}"
            yield _optional("outlets.constant_after_s", o.constant_after_s, constant, place)
            yield _optional("outlets.zeros_after_s", o.zeros_after_s, zeros, place)


def _treatment(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        for line in e.lines:
            if line.treatment:
                set_ = "treatment_grace_s" in line.model_fields_set
                yield (
                    "lines.treatment_grace_s",
                    _seconds(line.treatment_grace_s),
                    not set_,
                    f"{e.id}/{line.id}",
                )


def _enterprise_keys(*keys: str) -> Callable[[Sequence[Enterprise]], Iterable[Use]]:
    def uses(ents: Sequence[Enterprise]) -> Iterable[Use]:
        for e in ents:
            for key in keys:
                value = getattr(e, key)
                shown = _seconds(value) if key.endswith("_s") else _number(value)
                yield (key, shown, key not in e.model_fields_set, e.id)

    return uses


def _emission(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        for o in e.outlets:
            if o.lines and o.stopped_flow is not None:
                yield ("outlets.stopped_flow", _number(o.stopped_flow), False, f"{e.id}/{o.id}")
    yield from _enterprise_keys("shutdown_grace_s", "shutdown_persist_s")(ents)


def _bypass(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        for o in e.outlets:
            if o.bypass:
                place = f"{e.id}/{o.id}"
                floor = o.stopped_flow
                yield ("outlets.stopped_flow", _number(floor or 0.0), floor is None, place)
                set_ = "bypass_persist_s" in o.model_fields_set
                yield ("outlets.bypass_persist_s", _seconds(o.bypass_persist_s), not set_, place)


def _vehicles(ents: Sequence[Enterprise]) -> Iterable[Use]:
    for e in ents:
        if not e.gates:
            continue
        for level, rules in sorted(e.transport.items()):
            for rule in rules:
                shown = (
                    f"fuels {','.join(rule.banned_fuels)}; classes "
                    f"{','.join(rule.banned_classes)}; stage <= {rule.max_banned_stage}"
                    + (f"; cargo {','.join(rule.banned_cargo)}" if rule.banned_cargo else "")
                    + ("; leaving too" if "out" in rule.directions else "")
                )
                yield (f"transport.{level}", shown, "transport" not in e.model_fields_set, e.id)


def _refused(ents: Sequence[Enterprise]) -> Iterable[Use]:
    yield ("quiet_after_s", _seconds(QUIET_AFTER_S), True, "*")


_BY_TYPE: dict[str, Callable[[Sequence[Enterprise]], Iterable[Use]]] = {
    "device_offline": _device_offline,
    "data_gap": _data_gap,
    "over_limit": _over_limit,
    "suspicious_data": _suspicious,
    "treatment_not_running": _treatment,
    "production_during_shutdown": _enterprise_keys("shutdown_grace_s", "shutdown_persist_s"),
    "emission_during_shutdown": _emission,
    "curtailment_exceeded": _enterprise_keys(
        "curtail_window_s", "curtail_tolerance", "baseline_days"
    ),
    "banned_vehicle_entry": _vehicles,
    "bypass_flow": _bypass,
    "values_pinned": _over_limit,  # its band is a share of the limit
    "unregistered_device": _refused,
    "auth_failure": _refused,
}


def _value(value: object) -> str:
    return (
        _number(value)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else str(value)
    )


def _fields(model: BaseModel, type_: str) -> Iterable[tuple[str, object, bool]]:
    for name, info in type(model).model_fields.items():
        if (info.description or "").startswith(f"{type_}:"):
            yield name, getattr(model, name), name not in model.model_fields_set


def _described(type_: str, ents: Sequence[Enterprise]) -> Iterable[Use]:
    """The registry fields described `<type>: ...`, on enterprises, outlets, meters, lines."""
    for e in ents:
        for name, value, default in _fields(e, type_):
            yield (name, _value(value), default, e.id)
        for kind, items in (("outlets", e.outlets), ("meters", e.meters), ("lines", e.lines)):
            for item in items:
                for name, value, default in _fields(item, type_):
                    yield (f"{kind}.{name}", _value(value), default, f"{e.id}/{item.id}")


def thresholds(type_: str, enterprises: Sequence[Enterprise]) -> list[Threshold]:
    """The thresholds `type_` is judged by across `enterprises`."""
    uses = _BY_TYPE.get(type_)
    named = list(uses(enterprises)) if uses is not None else []
    keys = {u[0] for u in named}
    return _group([*named, *(u for u in _described(type_, enterprises) if u[0] not in keys)])
