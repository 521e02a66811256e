"""Every anomaly type the gateway raises, in one list: its family, default severity, the rule
that raises it and what explains it on a chart. The model's families, the API's type list, the
page's filters and the series explainer all read this list; `gateway.rules.catalog` builds the
rules it names. Depends on nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["warning", "alarm"]

# What the chart of an anomaly shows (see `explain.Explainer`); None: nothing to chart.
Chart = Literal["pollutant", "flow", "device", "treatment_meters", "production_meters"]


@dataclass(frozen=True, slots=True)
class AnomalyType:
    name: str
    family: str
    severity: Severity  # when it opens; some rules escalate (device_offline to alarm)
    rule: str  # the rule that raises it (a rule may raise several types)
    chart: Chart | None
    hourly: bool = False  # judged on hourly records: the chart reads a wider window


TYPES: tuple[AnomalyType, ...] = (
    AnomalyType("device_offline", "data_gaps", "warning", "device_offline", "device"),
    AnomalyType("data_gap", "data_gaps", "warning", "data_gap", "device", hourly=True),
    AnomalyType(
        "low_transmission", "data_gaps", "alarm", "low_transmission", "device", hourly=True
    ),
    AnomalyType(
        "over_limit", "abnormal_operation", "alarm", "over_limit", "pollutant", hourly=True
    ),
    AnomalyType(
        "treatment_not_running",
        "abnormal_operation",
        "alarm",
        "treatment_not_running",
        "treatment_meters",
    ),
    AnomalyType(
        "production_during_shutdown",
        "post_shutdown",
        "alarm",
        "production_during_shutdown",
        "production_meters",
    ),
    AnomalyType(
        "emission_during_shutdown", "post_shutdown", "alarm", "emission_during_shutdown", "flow"
    ),
    AnomalyType("suspicious_data", "abnormal_operation", "warning", "suspicious_data", "pollutant"),
    AnomalyType("bypass_flow", "abnormal_operation", "alarm", "bypass_flow", "flow"),
    AnomalyType(
        "values_pinned", "abnormal_operation", "warning", "values_pinned", "pollutant", hourly=True
    ),
    AnomalyType("flow_mismatch", "abnormal_operation", "warning", "operating_mismatch", "flow"),
    AnomalyType(
        "dilution", "abnormal_operation", "warning", "operating_mismatch", "pollutant", True
    ),
    AnomalyType("flag_abuse", "abnormal_operation", "warning", "flag_abuse", "pollutant", True),
    AnomalyType(
        "values_copied", "abnormal_operation", "warning", "values_copied", "pollutant", hourly=True
    ),
    AnomalyType(
        "curtailment_exceeded",
        "post_shutdown",
        "alarm",
        "curtailment_exceeded",
        "production_meters",
    ),
    AnomalyType("banned_vehicle_entry", "post_shutdown", "alarm", "banned_vehicle_entry", None),
    AnomalyType(
        "plan_indicator_exceeded",
        "post_shutdown",
        "alarm",
        "plan_indicator_exceeded",
        "production_meters",
    ),
    AnomalyType("unregistered_device", "data_quality", "warning", "refused_devices", None),
    AnomalyType("auth_failure", "data_quality", "warning", "refused_devices", None),
)

BY_NAME: dict[str, AnomalyType] = {t.name: t for t in TYPES}
FAMILIES: dict[str, str] = {t.name: t.family for t in TYPES}
RULES: tuple[str, ...] = tuple(dict.fromkeys(t.rule for t in TYPES))
