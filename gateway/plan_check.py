"""Each plan checked against the devices registered (可监测、可核查): a measure that no device
can verify is a problem. Pure: a function of the registry; problems are warnings, not errors
(the gateway starts, the enterprise status shows them).

What no device verifies: a line a plan stops or curtails without a production meter; a key
indicator a plan limits whose source is not there (a line without production meters, a data
logger not registered, or one whose registry entry does not declare the code); transport rules
of an enterprise without gates; a limit under a plan key not below the outlet's limit (its
last dated one): nothing is tightened, so nothing is judged under it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from weakref import WeakKeyDictionary

from .anomalies.messages.labels import LEVEL_LABELS
from .registry import Enterprise, Registry
from .vocabulary import canonical

_CACHE: WeakKeyDictionary[Registry, list[Problem]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Problem:
    """One plan measure no device can verify: `key` is the plan key (alert level or layer)
    it is under, `text` says it in Chinese."""

    code: str
    enterprise: str
    key: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _key(key: str) -> str:
    found = LEVEL_LABELS.get(key)
    return found["zh"] if found is not None else key


def check_plans(registry: Registry) -> list[Problem]:
    """The problems of every enterprise's plans, enterprise by enterprise."""
    return [p for ent in registry.data.enterprises for p in _enterprise(registry, ent)]


def problems_of(registry: Registry) -> list[Problem]:
    """`check_plans`, computed once per registry loaded."""
    found = _CACHE.get(registry)
    if found is None:
        found = _CACHE[registry] = check_plans(registry)
    return found


def _enterprise(registry: Registry, ent: Enterprise) -> list[Problem]:
    out: list[Problem] = []
    metered = {m.line for m in ent.meters if m.role == "production" and m.line}
    lines = {ln.id: ln for ln in ent.lines}

    def add(code: str, key: str, text: str) -> None:
        out.append(Problem(code, ent.id, key, text))

    for key, plan in ent.plans.items():
        plan_name = f"{_key(key)}方案"
        for line in plan.stop_lines:
            if line not in metered:
                add(
                    "stop_without_meter",
                    key,
                    f"{plan_name}要求产线{line}停产，但该产线没有生产电表，无法核查是否停产。",
                )
        for line in plan.curtail:
            if line not in metered:
                add(
                    "curtail_without_meter",
                    key,
                    f"{plan_name}要求产线{line}限产，但该产线没有生产电表，无法核查限产比例。",
                )
        for name in plan.indicators:
            line_id, _, ind_id = name.partition("/")
            found = lines.get(line_id)
            ind = next((i for i in found.indicators if i.id == ind_id), None) if found else None
            if ind is None:
                continue  # the registry's validation refuses it
            label = f"{plan_name}限定的产线{line_id}关键指标{ind.name or ind.id}"
            if ind.source == "running" and line_id not in metered:
                add(
                    "indicator_without_meter",
                    key,
                    f"{label}按运行台数判定，但该产线没有生产电表，无法核查。",
                )
            if ind.source != "device":
                continue
            device = registry.device(ind.mn)
            if device is None:
                add(
                    "indicator_device_unregistered",
                    key,
                    f"{label}取自数采仪{ind.mn}，但该设备未登记，无法核查。",
                )
                continue
            outlet = device.outlet
            wanted = canonical(ind.code, outlet.version)
            declared = {canonical(c, outlet.version) for c in (*outlet.pollutants, *outlet.codes)}
            if wanted not in declared:
                add(
                    "indicator_code_not_sent",
                    key,
                    f"{label}取自数采仪{ind.mn}的因子{ind.code}，但登记信息中该设备不上报此因子"
                    "（应列入其污染物或编码），无法核查。",
                )
    if "transport" in ent.model_fields_set and not ent.gates:
        for key, rules in ent.transport.items():
            if any(rule.max_banned_stage >= 0 for rule in rules):
                add(
                    "transport_without_gates",
                    key,
                    f"{_key(key)}的车辆管控要求无法核查：企业未登记门禁。",
                )
    for outlet in ent.outlets:
        for code, limit in outlet.pollutants.items():
            changes = sorted(limit.changes, key=lambda c: c.since)
            last = changes[-1].limit if changes else limit.limit  # in force from the last date
            for key, value in limit.control.items():
                if value >= last:
                    add(
                        "limit_not_tightened",
                        key,
                        f"排放口{outlet.id}因子{code}的{_key(key)}限值{value:g}不低于其排放限值"
                        f"{last:g}，管控期间不会收严。",
                    )
    return out
