"""The simulated enterprises and their days, as a timeline of device actions (no I/O; the same
plant state and day give the same actions), and the anomalies the scripted day must give.

Each enterprise `SIM{k}` (region `sim-city`) has:

- `DA1`, a flue-gas CEMS logger speaking HJ 212-2025 with an SM4-encrypted data area: 10-minute
  data (2051) and hourly data (2061) of SO2, NOx, dust, O2 and flow, following line L1's load,
  flag F while L1 is stopped; even enterprises send ZsAvg at 9 % O2, odd ones split their
  hourly uploads in two packets (the pollutants first, O2 and flow last) without ZsAvg;
- `DB1`, a boiler-stack logger speaking HJ/T 212-2005 (2005 codes `S01`, `B02`, `02`, `03`,
  `01`): hourly data without ZsAvg; every third hourly upload goes without QN and Flag (so
  unanswered), as 2005 loggers often send;
- `DW1`, a wastewater logger speaking HJ 212-2017 (even enterprises send the occasional frame
  with a CRC-16/MODBUS checksum): hourly COD, ammonia and flow;
- `DV1`, a VOCs logger speaking HJ 212-2017: 10-minute and hourly NMHC;
- meters `P1`, `P2`, `P3` (production, lines L1, L2, L3) publishing power and cumulative
  energy every 5 minutes, and `T1` (treatment facility F1, which serves L1) publishing its
  5-minute readings as a JSON array every 30 minutes;
- gate `G1` with heavy trucks and delivery vans through the day, and a permit (whitelist) for
  one 国四 truck, typed into the registry in another spelling than the gate reads it;
- alert plans: under orange, line L2 is curtailed by 30 % and L3 stops; under red, L3 stops.

Loggers send a heartbeat (9015) after 15 minutes without other traffic. A normal day: L1 runs
06:00-22:00 with treatment from 05:50 to 22:10, L2 runs 08:00-20:00, L3 all day. The caller
declares the regime of the scripted day (`SHUTDOWN_FROM`, `ORANGE`, `RED`: a shutdown order for
L1 from 10:00, an orange alert 12:00-20:00, then red 20:00-22:00). The scripted day (times in
Beijing time, the devices' clock) adds the faults:

- 03:00 COD over its limit at DW1 (`over_limit`);
- the 05:00 hour of DW1 is not sent; DW1 back-fills it when the gateway asks (`data_gap`);
- 06:00 SO2 at odd enterprises' DA1 over its limit as measured but not at 9 % O2 (no anomaly);
  08:00 under it as measured but over at 9 % O2 (`over_limit`);
- 07:00 SO2 at DB1 under its limit as measured, over it at 9 % O2 (`over_limit`);
- 08:00-08:40 treatment off while L1 runs (`treatment_not_running`; T1's array of 08:00-08:25
  arrives at 08:25);
- 09:00-09:40 DA1 reports zero dust while L1 runs (`suspicious_data`);
- L1 stops at 10:30 under the order but runs again 12:00-12:40, after its 2 h grace
  (`production_during_shutdown`), with flue gas flowing at DA1 until its first flag-F value at
  12:40 (`emission_during_shutdown`);
- DV1 falls silent at 11:00 for good (`device_offline`, judged on the wall clock);
- L2 keeps full power under the orange plan's 30 % cut (`curtailment_exceeded` against the
  previous day);
- L3 runs through the orange plan's stop and the red one that follows it
  (`production_during_shutdown` from 14:00, the orange start + 2 h, until red ends at 22:00);
- a 国四 diesel heavy truck enters at 14:30 (`banned_vehicle_entry`); a 国五 one at 14:40 and the
  permitted 国四 one at 14:50 are allowed;
- 16:00 a frame under DW1's MN with a wrong password (`auth_failure`);
- 16:10 a logger whose MN is not registered uploads (`unregistered_device`);
- DW1 sends no hourly data from 18:00 on, only heartbeats, and has none to back-fill
  (`data_gap`, open).

`expected_anomalies` derives the list of these anomalies from the same constants.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
TEN_MIN = timedelta(minutes=10)
HOUR = timedelta(hours=1)
HEARTBEAT_AFTER = timedelta(minutes=15)
METER_EVERY = timedelta(minutes=5)
ARRAY_READINGS = 6  # T1 publishes 6 readings (30 minutes) per message
KEEP_RECORDS = timedelta(days=7)
SHUTDOWN_GRACE = timedelta(hours=2)  # the registry's default `shutdown_grace_s`

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
# HJ/T 212-2005 codes of the boiler stack: O2, flue-gas flow, SO2, NOx, particulates
O2_2005, FLOW_2005, SO2_2005, NOX_2005, DUST_2005 = "S01", "B02", "02", "03", "01"
REF_O2 = 9.0
SO2_LIMIT = 100.0

# The regime the caller declares for the scripted day (`gateway.demo.regime_for`), in hours:
SHUTDOWN_FROM = 10  # a shutdown order for line L1, until the day's end
ORANGE = (12, 20)  # an orange alert over the region
RED = (20, 22)  # then red, without a gap

# The scripted faults, hours or (hour, minute) in Beijing time:
COD_FAULT_HOUR = 3
UNSENT_HOUR = 5  # DW1's hour kept for the back-fill
SPLIT_FAULTS = {6: (115.0, 6.0), 8: (80.0, 13.0)}  # odd DA1: hour -> (SO2, O2) measured
BOILER_FAULT = (7, 70.0, 15.0)  # DB1: hour, SO2, O2 measured
TREATMENT_OFF = ((8, 0), (8, 40))
DUST_ZEROS = ((9, 0), (9, 40))
L1_STOP = (10, 30)
L1_RESTART = ((12, 0), (12, 40))
DV1_SILENT = 11
BANNED_IN, ALLOWED_IN, PERMIT_IN = (14, 30), (14, 40), (14, 50)
IMPOSTOR_AT, UNKNOWN_AT = (16, 0), (16, 10)
HOURLY_UNTIL = 18  # DW1 sends only heartbeats from this hour on

WALL_CLOCK: Literal["wall clock"] = "wall clock"
WALL_CLOCK_TYPES = frozenset({"device_offline", "auth_failure", "unregistered_device"})


@dataclass(frozen=True, slots=True)
class LoggerSpec:
    """One HJ 212 data logger (or an impostor using a logger's MN) of enterprise `SIM{k}`."""

    k: int
    name: str
    mn: str
    st: str
    version: Literal["2005", "2017", "2025"]
    password: str = PASSWORD
    sm4_key: str | None = None
    split_hourly: bool = False
    modbus_every: int = 0  # every n-th hourly upload carries a CRC-16/MODBUS checksum

    @property
    def key(self) -> str:
        return f"SIM{self.k}/{self.name}"

    @property
    def flag_version(self) -> int:
        return {"2005": 0, "2017": 1, "2025": 2}[self.version]


@dataclass(frozen=True, slots=True)
class Upload:
    """An HJ 212 data upload (or heartbeat, CN 9015) sent at `at` (device clock); `bare`
    uploads go without QN and Flag, as some 2005 loggers send them (never answered)."""

    at: datetime
    logger: LoggerSpec
    cn: str
    cp: str = ""
    data_time: datetime | None = None
    crc: str = "hj212"
    expect_reply: bool = True
    bare: bool = False


@dataclass(frozen=True, slots=True)
class Publish:
    """An MQTT message (topic below the feed prefix) published at `at`."""

    at: datetime
    topic: str
    payload: dict[str, object] | list[dict[str, object]]


Action = Upload | Publish


class Expected(NamedTuple):
    """An anomaly as the replay compares it: times in Beijing time, or `WALL_CLOCK` for the
    types judged on the wall clock (a replay cannot fix those); `ended_at` None while open."""

    enterprise: str
    type: str
    subject: str
    started_at: datetime | Literal["wall clock"]
    ended_at: datetime | Literal["wall clock"] | None

    @classmethod
    def of(
        cls,
        enterprise: str,
        type_: str,
        subject: str,
        started_at: datetime,
        ended_at: datetime | None,
    ) -> Expected:
        """An anomaly the gateway reports, in the same form."""
        if type_ in WALL_CLOCK_TYPES:
            return cls(
                enterprise, type_, subject, WALL_CLOCK, None if ended_at is None else WALL_CLOCK
            )
        end = ended_at.astimezone(BEIJING) if ended_at is not None else None
        return cls(enterprise, type_, subject, started_at.astimezone(BEIJING), end)

    def key(self) -> tuple[str, str, str, str]:
        """Sort order: enterprise, then start, type and subject."""
        return (self.enterprise, _shown(self.started_at), self.type, self.subject)

    def __str__(self) -> str:
        return (
            f"{self.enterprise:<12} {self.type:<27} {self.subject:<44} "
            f"{_shown(self.started_at):<16} -> {_shown(self.ended_at)}"
        )


def _shown(moment: datetime | str | None) -> str:
    """Beijing time to the minute, or to the microsecond when it is not on a minute."""
    if isinstance(moment, datetime):
        local = moment.astimezone(BEIJING)
        exact = f":{local:%S.%f}" if local.second or local.microsecond else ""
        return f"{local:%Y-%m-%d %H:%M}{exact}"
    return "open" if moment is None else moment


def mn_of(k: int, suffix: str) -> str:
    return f"SIM{k:04d}{suffix}".ljust(24, "0")


def owner_of(enterprise: str, subject: str) -> str:
    """The simulated enterprise an anomaly is about: an unregistered MN belongs to no enterprise
    in the registry, but its subject names the simulated one."""
    found = re.match(r"mn:SIM(\d{4})", subject)
    return enterprise if found is None else f"SIM{int(found.group(1))}"


def sm4_key_of(k: int) -> str:
    return f"{k:04d}".rjust(32, "5")


def banned_plate(k: int) -> str:
    return f"冀A4{k:04d}"


def permit_plate(k: int) -> str:
    """The permitted 国四 truck's plate as the gate reads it."""
    return f"冀C7{k:04d}"


_FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def permit_spelling(k: int) -> str:
    """The same plate as the permit was typed into the registry: `冀c·70000` (lower case and
    a middle dot) at even enterprises, full-width `冀Ｃ７０００１` at odd ones."""
    plate = permit_plate(k)
    if k % 2 == 0:
        return f"{plate[0]}{plate[1].lower()}·{plate[2:]}"
    return plate[0] + plate[1:].translate(_FULL_WIDTH)


def loggers_of(k: int) -> dict[str, LoggerSpec]:
    """The enterprise's loggers, and the two devices that are not what they claim."""
    return {
        "DA1": LoggerSpec(
            k, "DA1", mn_of(k, "A"), "31", "2025", sm4_key=sm4_key_of(k), split_hourly=k % 2 == 1
        ),
        "DB1": LoggerSpec(k, "DB1", mn_of(k, "B"), "31", "2005"),
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
  id = "T1"
  role = "treatment"
  line = "F1"
  on_threshold_kw = 5
  offline_after_s = 3600
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
  [[enterprises.lines]]
  id = "L3"
  name = "coke dry quenching"
  [[enterprises.gates]]
  id = "G1"
  name = "main gate"
  [[enterprises.whitelist]]
  plate = "{permit_spelling(k)}"
  valid_from = 2020-01-01T00:00:00+08:00
  valid_to = 2100-01-01T00:00:00+08:00
  reason = "coke deliveries to the municipal heating plant"
  [enterprises.plans.orange]
  curtail = {{ L2 = 30 }}
  stop_lines = ["L3"]
  [enterprises.plans.red]
  stop_lines = ["L3"]
""")
    return "".join(out)


def expected_anomalies(day: datetime, k: int) -> list[Expected]:
    """Every anomaly of enterprise `SIM{k}` once a normal day and then the scripted `day`
    (local midnight) have been played under the declared regime, sorted by `Expected.key`."""

    def at(hour: int, minute: int = 0) -> datetime:
        return (day + timedelta(hours=hour, minutes=minute)).replace(tzinfo=BEIJING)

    ent = f"SIM{k}"
    lg = loggers_of(k)
    water = f"mn:{lg['DW1'].mn}"
    order_grace = at(SHUTDOWN_FROM) + SHUTDOWN_GRACE
    alert_grace = at(ORANGE[0]) + SHUTDOWN_GRACE  # red follows orange: one obligation
    out = [
        Expected(
            ent, "over_limit", f"outlet:{ent}/DW1/{COD}", at(COD_FAULT_HOUR), at(COD_FAULT_HOUR + 1)
        ),
        Expected(ent, "data_gap", water, at(UNSENT_HOUR), at(UNSENT_HOUR + 1)),
        Expected(
            ent,
            "treatment_not_running",
            f"line:{ent}/L1",
            at(*TREATMENT_OFF[0]),
            at(*TREATMENT_OFF[1]),
        ),
        Expected(
            ent,
            "suspicious_data",
            f"outlet:{ent}/DA1:zeros",
            at(*DUST_ZEROS[0]),
            at(*DUST_ZEROS[1]),
        ),
        Expected(
            ent,
            "production_during_shutdown",
            f"line:{ent}/L1",
            max(order_grace, at(*L1_RESTART[0])),
            at(*L1_RESTART[1]),
        ),
        # 10-minute records start on the stop: the one at the stop is the first flag F
        Expected(
            ent,
            "emission_during_shutdown",
            f"outlet:{ent}/DA1",
            max(order_grace, at(*L1_RESTART[0])),
            at(*L1_RESTART[1]),
        ),
        Expected(ent, "curtailment_exceeded", f"line:{ent}/L2", at(ORANGE[0]), at(ORANGE[1])),
        Expected(ent, "production_during_shutdown", f"line:{ent}/L3", alert_grace, at(RED[1])),
        Expected(
            ent,
            "banned_vehicle_entry",
            f"gate:{ent}/G1/{banned_plate(k)}",
            at(*BANNED_IN),
            at(*BANNED_IN),
        ),
        Expected(ent, "data_gap", water, at(HOURLY_UNTIL), None),
        Expected(ent, "device_offline", f"mn:{lg['DV1'].mn}", WALL_CLOCK, None),
        Expected(ent, "auth_failure", water, WALL_CLOCK, WALL_CLOCK),
        Expected("unregistered", "unregistered_device", f"mn:{lg['unknown'].mn}", WALL_CLOCK, None),
    ]
    over = [("DB1", BOILER_FAULT[0])] if _over(*BOILER_FAULT[1:]) else []
    if lg["DA1"].split_hourly:  # the hours over the limit at the reference O2 only
        over += [("DA1", hour) for hour, fault in SPLIT_FAULTS.items() if _over(*fault)]
    for outlet, hour in over:
        subject = f"outlet:{ent}/{outlet}/{SO2}"
        out.append(Expected(ent, "over_limit", subject, at(hour), at(hour + 1)))
    return sorted(out, key=Expected.key)


def _over(so2: float, o2: float) -> bool:
    """Whether a measured SO2 mean is over its limit once converted to the reference O2."""
    return so2 * (21 - REF_O2) / (21 - o2) > SO2_LIMIT


def _on(t: datetime, start: tuple[int, int], end: tuple[int, int]) -> bool:
    minutes = t.hour * 60 + t.minute
    return start[0] * 60 + start[1] <= minutes < end[0] * 60 + end[1]


def _at(day: datetime, when: tuple[int, int]) -> datetime:
    return day + timedelta(hours=when[0], minutes=when[1])


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
        return _on(t, (6, 0), L1_STOP) or _on(t, *L1_RESTART)

    def l2_running(self, t: datetime) -> bool:
        return _on(t, (8, 0), (20, 0))

    def treatment_running(self, t: datetime, scripted: bool) -> bool:
        if not scripted:
            return _on(t, (5, 50), (22, 10))
        return _on(t, (5, 50), TREATMENT_OFF[0]) or _on(t, TREATMENT_OFF[1], (13, 0))

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
        makers = (
            ("DA1", self._cems),
            ("DW1", self._water),
            ("DV1", self._vocs),
            ("DB1", self._boiler),
        )
        for name, make in makers:
            silent = day + timedelta(hours=DV1_SILENT) if scripted and name == "DV1" else None
            own = make(loggers[name], day, scripted, rng)
            actions += own + list(_heartbeats(loggers[name], own, day, silent_from=silent))
        if scripted:  # refused frames: not in any logger's records
            for t, name in ((_at(day, IMPOSTOR_AT), "impostor"), (_at(day, UNKNOWN_AT), "unknown")):
                cp = f"DataTime={t - HOUR:%Y%m%d%H%M%S};{COD}-Avg=20.0,{COD}-Flag=N"
                actions.append(Upload(t, loggers[name], "2061", cp, t - HOUR, expect_reply=False))
        actions.sort(key=lambda a: a.at)
        return actions

    def _meters(self, day: datetime, scripted: bool, rng: random.Random) -> list[Action]:
        out: list[Action] = []
        batch: list[dict[str, object]] = []
        t = day
        while t < day + timedelta(days=1):
            load = self.load(t, scripted, rng)
            readings = {
                "P1": 320.0 * load if load else rng.uniform(1.5, 3.0),
                "P2": 210.0 * rng.uniform(0.92, 1.0) if self.l2_running(t) else 1.0,
                "P3": 150.0 * rng.uniform(0.95, 1.0),
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
                topic = f"power/{self.ent}/{meter}"
                if meter != "T1":
                    out.append(Publish(t, topic, payload))
                    continue
                batch.append(payload)  # T1 uploads its readings in arrays
                if len(batch) == ARRAY_READINGS:
                    out.append(Publish(t, topic, batch))
                    batch = []
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
            for when, stage, plate in (
                (BANNED_IN, "国四", banned_plate(self.k)),
                (ALLOWED_IN, "国五", f"冀B5{self.k:04d}"),
                (PERMIT_IN, "国四", permit_plate(self.k)),
            ):
                passage = {
                    "plate": plate,
                    "emission_stage": stage,
                    "fuel": "柴油",
                    "vehicle_class": "重型货车",
                }
                out.append(self._passage(_at(day, when), "in", passage))
        return out

    def _passage(self, t: datetime, direction: str, passage: dict[str, object]) -> Publish:
        record = {"time": f"{t:%Y-%m-%dT%H:%M:%S}", "direction": direction, **passage}
        return Publish(t, f"gate/{self.ent}/G1", [record])

    def _record(self, logger: LoggerSpec, cn: str, data_time: datetime, body: str) -> str:
        cp = f"DataTime={data_time:%Y%m%d%H%M%S};{body}"
        self.history[(logger.mn, cn, data_time)] = cp
        return cp

    def _hourly(
        self, logger: LoggerSpec, hour: datetime, body: str, *, bare: bool = False
    ) -> Upload:
        """The upload of an hour, sent at its end (the occasional MODBUS CRC included)."""
        cp = self._record(logger, "2061", hour, body)
        n = self._hourly_sent[logger.key] = self._hourly_sent.get(logger.key, 0) + 1
        crc = "modbus" if logger.modbus_every and n % logger.modbus_every == 0 else "hj212"
        return Upload(
            hour + HOUR, logger, "2061", cp, hour, crc=crc, expect_reply=not bare, bare=bare
        )

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
            if scripted and _on(t, *DUST_ZEROS):
                v[DUST] = 0.0
            if scripted and logger.split_hourly and t.hour in SPLIT_FAULTS:
                so2, o2 = SPLIT_FAULTS[t.hour]
                v[SO2], v[O2] = so2 + rng.uniform(-1, 1), o2 + rng.uniform(-0.1, 0.1)
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
                body = _cems_hour(minutes, hour_flag, zs=not logger.split_hourly)
                out.append(self._hourly(logger, t - HOUR, body))
                minutes, running = [], 0
        return out

    def _boiler(
        self, logger: LoggerSpec, day: datetime, scripted: bool, rng: random.Random
    ) -> list[Action]:
        """DB1: a boiler stack burning all day, hourly records in the 2005 codes."""
        out: list[Action] = []
        for h in range(24):
            hour = day + timedelta(hours=h)
            so2, o2 = 40.0 + rng.uniform(-5, 5), 9.5 + rng.uniform(-0.4, 0.4)
            if scripted and h == BOILER_FAULT[0]:
                so2, o2 = BOILER_FAULT[1], BOILER_FAULT[2]
            values = {
                O2_2005: o2,
                FLOW_2005: 25.0 + rng.uniform(-1, 1),
                SO2_2005: so2,
                NOX_2005: 50.0 + rng.uniform(-5, 5),
                DUST_2005: 6.0 + rng.uniform(-1, 1),
            }
            body = ";".join(
                f"{code}-Avg={value:.2f},{code}-Min={value * 0.96:.2f},"
                f"{code}-Max={value * 1.04:.2f},{code}-Flag=N"
                for code, value in values.items()
            )
            out.append(self._hourly(logger, hour, body, bare=h % 3 == 2))
        return out

    def _water(
        self, logger: LoggerSpec, day: datetime, scripted: bool, rng: random.Random
    ) -> list[Action]:
        out: list[Action] = []
        for h in range(HOURLY_UNTIL if scripted else 24):
            hour = day + timedelta(hours=h)
            load = self.load(hour + HOUR / 2, scripted, rng)
            cod = (
                65.0
                if scripted and h == COD_FAULT_HOUR
                else 18.0 + 14.0 * load + rng.uniform(-2, 2)
            )
            flow = 20.0 + 40.0 * load + rng.uniform(-2, 2)
            body = (
                f"{COD}-Avg={cod:.1f},{COD}-Flag=N;{NH3N}-Avg={1.2 + rng.uniform(0, 0.8):.2f},"
                f"{NH3N}-Flag=N;{WFLOW}-Avg={flow:.1f},{WFLOW}-Cou={flow:.1f},{WFLOW}-Flag=N"
            )
            upload = self._hourly(logger, hour, body)
            if not (scripted and h == UNSENT_HOUR):  # kept for the back-fill, not sent
                out.append(upload)
        return out

    def _vocs(
        self, logger: LoggerSpec, day: datetime, scripted: bool, rng: random.Random
    ) -> list[Action]:
        if self.dv1_dead:
            return []
        out: list[Action] = []
        end = day + timedelta(hours=DV1_SILENT) if scripted else day + timedelta(days=1)
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


def _cems_hour(minutes: list[dict[str, float]], flag: str, *, zs: bool) -> str:
    """An hour's CEMS record from its 10-minute values; with `zs`, ZsAvg converted to the
    reference O2 (else the receiver converts with the hour's O2)."""
    o2 = sum(m[O2] for m in minutes) / len(minutes)
    groups = []
    for code in minutes[0]:
        values = [m[code] for m in minutes]
        avg = sum(values) / len(values)
        group = f"{code}-Avg={avg:.2f},{code}-Min={min(values):.2f},{code}-Max={max(values):.2f}"
        if zs and code in (SO2, NOX, DUST) and o2 < 19.0:
            group += f",{code}-ZsAvg={avg * (21 - REF_O2) / (21 - o2):.2f}"
        groups.append(f"{group},{code}-Flag={flag}")
    return ";".join(groups)


def _heartbeats(
    logger: LoggerSpec, uploads: list[Action], day: datetime, *, silent_from: datetime | None
) -> Iterator[Upload]:
    """9015 heartbeats wherever the logger has been quiet for 15 minutes, until the day's end
    or `silent_from` (a logger that dies is silent, not idle); none from a dead logger."""
    if not uploads:
        return
    end = silent_from or day + timedelta(days=1)
    last = day
    for at in [*sorted(a.at for a in uploads if a.at <= end), end]:
        while at - last > HEARTBEAT_AFTER:
            last += HEARTBEAT_AFTER
            yield Upload(last, logger, "9015")
        last = at
