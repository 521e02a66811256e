"""The simulated enterprises and their days, as a timeline of device actions (no I/O; the same
plant state and day give the same actions).

Each enterprise `SIM{k}` (region `sim-city`) has:

- `DA1`, a flue-gas CEMS logger speaking HJ 212-2025 with an SM4-encrypted data area (odd
  enterprises split their hourly uploads in two packets): 10-minute data (2051) and hourly
  data (2061) of SO2, NOx, dust, O2 and flow, following line L1's load;
- `DW1`, a wastewater logger speaking HJ 212-2017 (even enterprises send the occasional frame
  with a CRC-16/MODBUS checksum): hourly COD, ammonia and flow;
- `DV1`, a VOCs logger speaking HJ 212-2017: 10-minute and hourly NMHC;
- meters `P1` (production, line L1), `P2` (production, line L2) and `T1` (treatment
  facility F1, which serves L1) publishing power and cumulative energy every 5 minutes;
- gate `G1` with heavy trucks and delivery vans through the day;
- an alert plan: under orange, line L2 is curtailed by 30 %.

Loggers send a heartbeat (9015) after 15 minutes without other traffic. A normal day: L1 runs
06:00-22:00 with treatment from 05:50 to 22:10, L2 runs 08:00-20:00. The scripted day (times
in Beijing time, the devices' clock) adds the faults:

- 03:00 COD over its limit at DW1 (`over_limit`);
- the 05:00 hour of DW1 is not sent; DW1 back-fills it when the gateway asks (`data_gap`);
- 08:00-08:40 treatment off while L1 runs (`treatment_not_running`);
- 09:00-09:40 DA1 reports zero dust while L1 runs (`suspicious_data`);
- a shutdown order for L1 from 10:00 (declared by the caller, 2 h ramp-down): L1 stops at
  10:30 but runs again 12:00-12:40 (`production_during_shutdown`), with flue gas flowing at
  DA1 (`emission_during_shutdown`);
- DV1 falls silent at 11:00 for good (`device_offline`, judged on the wall clock);
- an orange alert from 12:00 to 20:00 (declared by the caller): L2 keeps full power
  (`curtailment_exceeded` against the previous day), and a 国四 diesel heavy truck enters at
  14:30 (`banned_vehicle_entry`; a 国五 one at 14:40 is allowed);
- 16:00 a frame under DW1's MN with a wrong password (`auth_failure`);
- 16:10 a logger whose MN is not registered uploads (`unregistered_device`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

TEN_MIN = timedelta(minutes=10)
HOUR = timedelta(hours=1)
HEARTBEAT_AFTER = timedelta(minutes=15)
METER_EVERY = timedelta(minutes=5)
KEEP_RECORDS = timedelta(days=7)

SCRIPTED_TYPES = (
    "over_limit",
    "data_gap",
    "treatment_not_running",
    "suspicious_data",
    "production_during_shutdown",
    "emission_during_shutdown",
    "device_offline",
    "curtailment_exceeded",
    "banned_vehicle_entry",
    "auth_failure",
    "unregistered_device",
)

PASSWORD = "sim212"
SO2, NOX, DUST, O2, FLOW = "a21026", "a21002", "a34013", "a19001", "a00000"
COD, NH3N, WFLOW, NMHC = "w01018", "w21003", "w00000", "a24088"
REF_O2 = 9.0


@dataclass(frozen=True, slots=True)
class LoggerSpec:
    """One HJ 212 data logger (or an impostor using a logger's MN) of enterprise `SIM{k}`."""

    k: int
    name: str
    mn: str
    st: str
    version: Literal["2017", "2025"]
    password: str = PASSWORD
    sm4_key: str | None = None
    split_hourly: bool = False
    modbus_every: int = 0  # every n-th hourly upload carries a CRC-16/MODBUS checksum

    @property
    def key(self) -> str:
        return f"SIM{self.k}/{self.name}"

    @property
    def flag_version(self) -> int:
        return 2 if self.version == "2025" else 1


@dataclass(frozen=True, slots=True)
class Upload:
    """An HJ 212 data upload (or heartbeat, CN 9015) sent at `at` (device clock)."""

    at: datetime
    logger: LoggerSpec
    cn: str
    cp: str = ""
    data_time: datetime | None = None
    crc: str = "hj212"
    expect_reply: bool = True


@dataclass(frozen=True, slots=True)
class Publish:
    """An MQTT message (topic below the feed prefix) published at `at`."""

    at: datetime
    topic: str
    payload: dict[str, object] | list[dict[str, object]]


Action = Upload | Publish


def mn_of(k: int, suffix: str) -> str:
    return f"SIM{k:04d}{suffix}".ljust(24, "0")


def owner_of(enterprise: str, subject: str) -> str:
    """The simulated enterprise an anomaly is about: an unregistered MN belongs to no enterprise
    in the registry, but its subject names the simulated one."""
    found = re.match(r"mn:SIM(\d{4})", subject)
    return enterprise if found is None else f"SIM{int(found.group(1))}"


def sm4_key_of(k: int) -> str:
    return f"{k:04d}".rjust(32, "5")


def loggers_of(k: int) -> dict[str, LoggerSpec]:
    """The enterprise's loggers, and the two devices that are not what they claim."""
    return {
        "DA1": LoggerSpec(
            k, "DA1", mn_of(k, "A"), "31", "2025", sm4_key=sm4_key_of(k), split_hourly=k % 2 == 1
        ),
        "DW1": LoggerSpec(k, "DW1", mn_of(k, "W"), "32", "2017", modbus_every=6 * (k % 2 == 0)),
        "DV1": LoggerSpec(k, "DV1", mn_of(k, "V"), "27", "2017"),
        "impostor": LoggerSpec(k, "DW1-impostor", mn_of(k, "W"), "32", "2017", password="x"),
        "unknown": LoggerSpec(k, "unregistered", mn_of(k, "X"), "32", "2017"),
    }


def registry_toml(enterprises: int, *, logger_offline_after_s: float | None = None) -> str:
    """The registry of the simulated enterprises (all in region `sim-city`)."""
    offline = f"\n  offline_after_s = {logger_offline_after_s}" if logger_offline_after_s else ""
    out = []
    for k in range(enterprises):
        lg = loggers_of(k)
        out.append(f"""
[[enterprises]]
id = "SIM{k}"
name = "Simulated plant {k}"
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
  {SO2} = {{ limit = 100, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  {NOX} = {{ limit = 150, ref_o2 = {REF_O2}, unit = "mg/m3" }}
  {DUST} = {{ limit = 20, ref_o2 = {REF_O2}, unit = "mg/m3" }}
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
  id = "T1"
  role = "treatment"
  line = "F1"
  on_threshold_kw = 5
  [[enterprises.facilities]]
  id = "F1"
  name = "desulphurisation and dust removal"
  meters = ["T1"]
  [[enterprises.lines]]
  id = "L1"
  name = "coke oven"
  treatment = [{{ facility = "F1" }}]
  [[enterprises.lines]]
  id = "L2"
  name = "coal preparation"
  [[enterprises.gates]]
  id = "G1"
  name = "main gate"
  [enterprises.plans.orange]
  curtail = {{ L2 = 30 }}
""")
    return "".join(out)


def _on(t: datetime, start: tuple[int, int], end: tuple[int, int]) -> bool:
    minutes = t.hour * 60 + t.minute
    return start[0] * 60 + start[1] <= minutes < end[0] * 60 + end[1]


@dataclass
class Plant:
    """One enterprise: its state carries over from day to day (energy counters, a dead logger)."""

    k: int
    kwh: dict[str, float] = field(default_factory=dict)
    dv1_dead: bool = False
    history: dict[tuple[str, str, datetime], str] = field(default_factory=dict)
    _hourly_sent: dict[str, int] = field(default_factory=dict)

    @property
    def ent(self) -> str:
        return f"SIM{self.k}"

    def l1_running(self, t: datetime, scripted: bool) -> bool:
        if not scripted:
            return _on(t, (6, 0), (22, 0))
        return _on(t, (6, 0), (10, 30)) or _on(t, (12, 0), (12, 40))

    def l2_running(self, t: datetime) -> bool:
        return _on(t, (8, 0), (20, 0))

    def treatment_running(self, t: datetime, scripted: bool) -> bool:
        if not scripted:
            return _on(t, (5, 50), (22, 10))
        return _on(t, (5, 50), (8, 0)) or _on(t, (8, 40), (13, 0))

    def load(self, t: datetime, scripted: bool, rng: random.Random) -> float:
        """Line L1's load, 0 when stopped, about 0.8-1.0 over a shift."""
        if not self.l1_running(t, scripted):
            return 0.0
        return 0.9 + 0.07 * math.sin((t.hour - 6) / 16 * math.pi) + rng.uniform(-0.03, 0.03)

    def day(self, day: datetime, *, scripted: bool) -> list[Action]:
        """The day's actions in time order (`day` is local midnight); records older than
        `KEEP_RECORDS` are forgotten (no back-fill reaches further)."""
        for key in [k for k in self.history if k[2] < day - KEEP_RECORDS]:
            del self.history[key]
        rng = random.Random(f"{self.k}/{day:%Y%m%d}")
        loggers = loggers_of(self.k)
        actions: list[Action] = []
        actions += self._meters(day, scripted, rng)
        actions += self._gate(day, scripted, rng)
        for name, make in (("DA1", self._cems), ("DW1", self._water), ("DV1", self._vocs)):
            own = make(loggers[name], day, scripted, rng)
            actions += own + list(_heartbeats(loggers[name], own, day))
        if scripted:  # refused frames: not in any logger's records
            for t, name in (
                (day + timedelta(hours=16), "impostor"),
                (day + timedelta(hours=16, minutes=10), "unknown"),
            ):
                cp = f"DataTime={t - HOUR:%Y%m%d%H%M%S};{COD}-Avg=20.0,{COD}-Flag=N"
                actions.append(Upload(t, loggers[name], "2061", cp, t - HOUR, expect_reply=False))
        actions.sort(key=lambda a: a.at)
        return actions

    def _meters(self, day: datetime, scripted: bool, rng: random.Random) -> list[Action]:
        out: list[Action] = []
        t = day
        while t < day + timedelta(days=1):
            load = self.load(t, scripted, rng)
            readings = {
                "P1": 320.0 * load if load else rng.uniform(1.5, 3.0),
                "P2": 210.0 * rng.uniform(0.92, 1.0) if self.l2_running(t) else 1.0,
                "T1": rng.uniform(38.0, 44.0) if self.treatment_running(t, scripted) else 0.4,
            }
            for meter, p_kw in readings.items():
                total = self.kwh.get(meter, 10_000.0 * (self.k + 1))
                self.kwh[meter] = total + p_kw * METER_EVERY.total_seconds() / 3600
                payload: dict[str, object] = {
                    "time": f"{t:%Y-%m-%dT%H:%M:%S}",
                    "p_kw": round(p_kw, 2),
                    "kwh": round(total, 2),
                }
                out.append(Publish(t, f"power/{self.ent}/{meter}", payload))
            t += METER_EVERY
        return out

    def _gate(self, day: datetime, scripted: bool, rng: random.Random) -> list[Action]:
        out: list[Action] = []
        t = day + timedelta(hours=6, minutes=20)
        n = 0
        while t.hour < 20:
            n += 1
            heavy = rng.random() < 0.7
            passage: dict[str, object] = {
                "plate": f"冀{'ABCDEFGH'[self.k % 8]}{n:03d}{self.k % 100:02d}",
                "emission_stage": rng.choice(["国五", "国六", "国六"]) if heavy else "国六",
                "fuel": rng.choice(["柴油", "柴油", "天然气"]) if heavy else "电",
                "vehicle_class": "重型货车" if heavy else "轻型货车",
            }
            out.append(self._passage(t, "in", passage))
            out.append(self._passage(t + timedelta(minutes=rng.randint(20, 50)), "out", passage))
            t += timedelta(minutes=rng.randint(25, 55))
        if scripted:
            for minutes, stage, plate in ((30, "国四", "冀A4"), (40, "国五", "冀B5")):
                passage = {
                    "plate": f"{plate}{self.k:04d}",
                    "emission_stage": stage,
                    "fuel": "柴油",
                    "vehicle_class": "重型货车",
                }
                out.append(self._passage(day + timedelta(hours=14, minutes=minutes), "in", passage))
        return out

    def _passage(self, t: datetime, direction: str, passage: dict[str, object]) -> Publish:
        record = {"time": f"{t:%Y-%m-%dT%H:%M:%S}", "direction": direction, **passage}
        return Publish(t, f"gate/{self.ent}/G1", [record])

    def _record(self, logger: LoggerSpec, cn: str, data_time: datetime, body: str) -> str:
        cp = f"DataTime={data_time:%Y%m%d%H%M%S};{body}"
        self.history[(logger.mn, cn, data_time)] = cp
        return cp

    def _hourly(self, logger: LoggerSpec, hour: datetime, body: str, **kw: bool) -> Upload:
        """The upload of an hour, sent at its end (the occasional MODBUS CRC included)."""
        cp = self._record(logger, "2061", hour, body)
        n = self._hourly_sent[logger.key] = self._hourly_sent.get(logger.key, 0) + 1
        crc = "modbus" if logger.modbus_every and n % logger.modbus_every == 0 else "hj212"
        return Upload(hour + HOUR, logger, "2061", cp, hour, crc=crc)

    def _cems(
        self, logger: LoggerSpec, day: datetime, scripted: bool, rng: random.Random
    ) -> list[Action]:
        out: list[Action] = []
        minutes: list[dict[str, float]] = []
        running = 0
        t = day
        while t < day + timedelta(days=1):
            load = self.load(t + TEN_MIN / 2, scripted, rng)
            v = {
                FLOW: 2.0 + 36.0 * load + rng.uniform(-0.4, 0.4),
                O2: 20.6 - 10.5 * load + rng.uniform(-0.2, 0.2),
                SO2: 6.0 + 28.0 * load + rng.uniform(-2, 2),
                NOX: 15.0 + 70.0 * load + rng.uniform(-4, 4),
                DUST: 1.0 + 4.0 * load + rng.uniform(-0.3, 0.3),
            }
            if scripted and _on(t, (9, 0), (9, 40)):
                v[DUST] = 0.0
            flag = "N" if load else "F"
            body = ";".join(
                f"{code}-Avg={value:.2f},{code}-Flag={flag}" for code, value in v.items()
            )
            out.append(
                Upload(t + TEN_MIN, logger, "2051", self._record(logger, "2051", t, body), t)
            )
            minutes.append(v)
            running += load > 0
            t += TEN_MIN
            if len(minutes) == 6:
                hour_flag = "N" if running >= 3 else "F"
                out.append(self._hourly(logger, t - HOUR, _cems_hour(minutes, hour_flag)))
                minutes, running = [], 0
        return out

    def _water(
        self, logger: LoggerSpec, day: datetime, scripted: bool, rng: random.Random
    ) -> list[Action]:
        out: list[Action] = []
        for h in range(24):
            hour = day + timedelta(hours=h)
            load = self.load(hour + HOUR / 2, scripted, rng)
            cod = 65.0 if scripted and h == 3 else 18.0 + 14.0 * load + rng.uniform(-2, 2)
            flow = 20.0 + 40.0 * load + rng.uniform(-2, 2)
            body = (
                f"{COD}-Avg={cod:.1f},{COD}-Flag=N;{NH3N}-Avg={1.2 + rng.uniform(0, 0.8):.2f},"
                f"{NH3N}-Flag=N;{WFLOW}-Avg={flow:.1f},{WFLOW}-Cou={flow:.1f},{WFLOW}-Flag=N"
            )
            upload = self._hourly(logger, hour, body)
            if not (scripted and h == 5):  # kept for the back-fill, not sent
                out.append(upload)
        return out

    def _vocs(
        self, logger: LoggerSpec, day: datetime, scripted: bool, rng: random.Random
    ) -> list[Action]:
        if self.dv1_dead:
            return []
        out: list[Action] = []
        end = day + timedelta(hours=11) if scripted else day + timedelta(days=1)
        t = day
        values = []
        while t < end:
            value = 4.0 + 18.0 * self.load(t, scripted, rng) + rng.uniform(-1, 1)
            body = f"{NMHC}-Avg={value:.2f},{NMHC}-Flag=N"
            out.append(
                Upload(t + TEN_MIN, logger, "2051", self._record(logger, "2051", t, body), t)
            )
            values.append(value)
            t += TEN_MIN
            if len(values) == 6:
                mean = sum(values) / 6
                body = (
                    f"{NMHC}-Avg={mean:.2f},{NMHC}-Min={min(values):.2f},"
                    f"{NMHC}-Max={max(values):.2f},{NMHC}-Flag=N"
                )
                out.append(self._hourly(logger, t - HOUR, body))
                values = []
        self.dv1_dead = scripted
        return out


def _cems_hour(minutes: list[dict[str, float]], flag: str) -> str:
    """An hour's CEMS record from its 10-minute values, ZsAvg converted to the reference O2."""
    o2 = sum(m[O2] for m in minutes) / len(minutes)
    groups = []
    for code in minutes[0]:
        values = [m[code] for m in minutes]
        avg = sum(values) / len(values)
        group = f"{code}-Avg={avg:.2f},{code}-Min={min(values):.2f},{code}-Max={max(values):.2f}"
        if code in (SO2, NOX, DUST) and o2 < 19.0:
            group += f",{code}-ZsAvg={avg * (21 - REF_O2) / (21 - o2):.2f}"
        groups.append(f"{group},{code}-Flag={flag}")
    return ";".join(groups)


def _heartbeats(logger: LoggerSpec, uploads: list[Action], day: datetime) -> Iterator[Upload]:
    """9015 heartbeats wherever the logger has been quiet for 15 minutes (not once dead)."""
    times = sorted(a.at for a in uploads)
    if not times:
        return
    last = day
    for at in [*times, day + timedelta(days=1)]:
        if at > times[-1] + HOUR:  # a logger that stopped sending is silent, not idle
            break
        while at - last > HEARTBEAT_AFTER:
            last += HEARTBEAT_AFTER
            yield Upload(last, logger, "9015")
        last = at
