"""The registry: enterprises and their devices, loaded from one TOML file and validated.

Its sections, by module: `outlets` (HJ 212 devices and limits), `plant` (meters, lines,
facilities), `transport` (gates, transport rules), `measures` (plans, grades, schedules,
control periods), `enterprise`, and `loaded` (the file as a whole and the `Registry`); every
public name is importable from here."""

from .common import BEIJING, Moment, check_timezone, quiet_window
from .enterprise import Enterprise
from .loaded import Device, Registry, RegistryFile
from .measures import (
    ControlPeriod,
    Grade,
    GradeChange,
    GradePlan,
    IndicatorLimit,
    IndustrySchedule,
    Percent,
    Plan,
    Schedule,
    month_day,
)
from .outlets import (
    SM4_KEY_BYTES,
    CrcPolicy,
    LimitChange,
    Outlet,
    PollutantLimit,
    PowerCode,
    PowerQuantity,
    parse_key,
)
from .plant import Facility, FacilityLink, Indicator, Line, Meter, StateSource
from .transport import Gate, StandingTransportRule, TransportRule, WhitelistEntry, default_transport

__all__ = [
    "BEIJING",
    "SM4_KEY_BYTES",
    "ControlPeriod",
    "CrcPolicy",
    "Device",
    "Enterprise",
    "Facility",
    "FacilityLink",
    "Gate",
    "Grade",
    "GradeChange",
    "GradePlan",
    "Indicator",
    "IndicatorLimit",
    "IndustrySchedule",
    "LimitChange",
    "Line",
    "Meter",
    "Moment",
    "Outlet",
    "Percent",
    "Plan",
    "PollutantLimit",
    "PowerCode",
    "PowerQuantity",
    "Registry",
    "RegistryFile",
    "Schedule",
    "StandingTransportRule",
    "StateSource",
    "TransportRule",
    "WhitelistEntry",
    "check_timezone",
    "default_transport",
    "month_day",
    "parse_key",
    "quiet_window",
]
