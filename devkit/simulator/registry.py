"""The registry of the simulated enterprises: their outlets and limits, meters, lines, gate,
a permit typed in another spelling than the gate reads it, alert plans (under orange, line
L2 is curtailed by 30 %, its load limited to 70 %, and L3 stops; under red, L3 stops), L4's
daily stop (a schedule), the
orange transport rules (国4 heavy trucks may not enter, 国5 ones may not carry muck in or out),
and standing rules for coking plants' non-road machinery (国2 and below, or unregistered,
may not enter)."""

from __future__ import annotations

from devkit.simulator.devices import (
    COD,
    DUST,
    NH3N,
    NMHC,
    NOX,
    PASSWORD,
    SO2,
    SO2_2005,
    loggers_of,
    permit_spelling,
)
from devkit.simulator.script import L2_MAX_LOAD, L2_RATED_KW, L4_PAUSE

# The gas outlets' reference O2 (%) and SO2 limit (mg/m3), which ZsAvg and the faults follow:
REF_O2 = 9.0
SO2_LIMIT = 100.0


def registry_toml(enterprises: int, *, logger_offline_after_s: float | None = None) -> str:
    """The registry of the simulated enterprises (all in region `sim-city`)."""
    offline = f"\n  offline_after_s = {logger_offline_after_s}" if logger_offline_after_s else ""
    out = []
    for k in range(enterprises):
        lg = loggers_of(k)
        out.append(f"""
[[enterprises]]
id = "SIM{k}"
name = "模拟焦化厂{k}"
region = "sim-city"
industry = "coking"
  [[enterprises.outlets]]
  id = "DA1"
  mn = "{lg["DA1"].mn}"
  password = "{PASSWORD}"
  version = "2025"
  sm4_key = "{lg["DA1"].sm4_key}"
  kind = "gas"
  lines = ["L1"]
  stopped_flow = 3.0{offline}
  [enterprises.outlets.pollutants]
  {SO2} = {{ limit = {SO2_LIMIT:g}, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  {NOX} = {{ limit = 150, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  {DUST} = {{ limit = 20, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  [[enterprises.outlets]]
  id = "DB1"
  mn = "{lg["DB1"].mn}"
  password = "{PASSWORD}"
  version = "2005"
  kind = "gas"{offline}
  [enterprises.outlets.pollutants]
  "{SO2_2005}" = {{ limit = {SO2_LIMIT:g}, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  {NOX} = {{ limit = 150, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  [[enterprises.outlets]]
  id = "DW1"
  mn = "{lg["DW1"].mn}"
  password = "{PASSWORD}"
  version = "2017"
  kind = "water"{offline}
  [enterprises.outlets.pollutants]
  {COD} = {{ limit = 50, unit = "mg/L" }}
  {NH3N} = {{ limit = 5, unit = "mg/L" }}
  [[enterprises.outlets]]
  id = "DV1"
  mn = "{lg["DV1"].mn}"
  password = "{PASSWORD}"
  version = "2017"
  kind = "vocs"{offline}
  [enterprises.outlets.pollutants]
  {NMHC} = {{ limit = 60, unit = "mg/m3" }}
  [[enterprises.meters]]
  id = "P1"
  role = "production"
  line = "L1"
  on_threshold_kw = 50
  [[enterprises.meters]]
  id = "P2"
  role = "production"
  line = "L2"
  on_threshold_kw = 30
  [[enterprises.meters]]
  id = "P3"
  role = "production"
  line = "L3"
  on_threshold_kw = 20
  [[enterprises.meters]]
  id = "P4"
  role = "production"
  line = "L4"
  on_threshold_kw = 10
  [[enterprises.meters]]
  id = "T1"
  role = "treatment"
  line = "F1"
  on_threshold_kw = 5
  offline_after_s = 3600
  [[enterprises.facilities]]
  id = "F1"
  name = "脱硫除尘设施"
  meters = ["T1"]
  [[enterprises.lines]]
  id = "L1"
  name = "焦炉"
  treatment = [{{ facility = "F1" }}]
  [[enterprises.lines]]
  id = "L2"
  name = "备煤"
    [[enterprises.lines.indicators]]
    id = "load"
    name = "备煤负荷"
    source = "load"
    meter = "P2"
    rated_kw = {L2_RATED_KW:g}
  [[enterprises.lines]]
  id = "L3"
  name = "干熄焦"
  [[enterprises.lines]]
  id = "L4"
  name = "涂装"
  [[enterprises.schedules]]
  name = "午间错时生产"
  lines = ["L4"]
  stop = true
  hours = ["{L4_PAUSE[0][0]:02d}:{L4_PAUSE[0][1]:02d}-{L4_PAUSE[1][0]:02d}:{L4_PAUSE[1][1]:02d}"]
  months = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
  [[enterprises.gates]]
  id = "G1"
  name = "北门"
  registration_codes = true
  [[enterprises.whitelist]]
  plate = "{permit_spelling(k)}"
  valid_from = 2020-01-01T00:00:00+08:00
  valid_to = 2100-01-01T00:00:00+08:00
  reason = "保障市供热站焦炭运输"
  [enterprises.plans.orange]
  curtail = {{ L2 = 30 }}
  stop_lines = ["L3"]
  responsible = "生产副厂长"
  contact = "0311-8000{k:04d}"
  indicators = {{ "L2/load" = {{ max = {L2_MAX_LOAD:g} }} }}
  [enterprises.plans.red]
  stop_lines = ["L3"]
  [[enterprises.transport.orange]]
  max_banned_stage = 4
  [[enterprises.transport.orange]]
  max_banned_stage = 5
  banned_cargo = ["muck"]
  directions = ["in", "out"]
  [[enterprises.transport.red]]
  max_banned_stage = 4
""")
    out.append(STANDING_RULES)
    return "".join(out)


STANDING_RULES = """
[[transport_standing]]
name = "焦化企业非道路移动机械国三及以上"
since = 2020-01-01
industries = ["coking"]
banned_classes = ["machinery"]
banned_fuels = ["diesel"]
max_banned_stage = 2
[[transport_standing]]
name = "未登记编码的非道路移动机械禁止入厂"
since = 2020-01-01
industries = ["coking"]
banned_classes = ["machinery"]
require_registration = true
"""
