"""The simulated enterprises' days as a timeline of device actions (no I/O; the same plant
state and day give the same actions).

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
- meters `P1`, `P2`, `P3`, `P4` (production, lines L1, L2, L3, L4) publishing power and cumulative
  energy every 5 minutes, and `T1` (treatment facility F1, which serves L1) publishing its
  5-minute readings as a JSON array every 30 minutes;
- gate `G1` with heavy trucks and delivery vans through the day, and a permit (whitelist) for
  one 国四 truck (`registry`); its system sends non-road machinery's registration codes.

Loggers send a heartbeat (9015) after 15 minutes without other traffic. A normal day: L1 runs
06:00-22:00 with treatment from 05:50 to 22:10, L2 runs 08:00-20:00, L3 all day, L4 08:00-18:00
but for its daily stop 11:00-14:00. The scripted
day adds the faults of `script`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from devkit.simulator.devices import (
    COD,
    DUST,
    DUST_2005,
    FLOW,
    FLOW_2005,
    HOUR,
    NH3N,
    NMHC,
    NOX,
    NOX_2005,
    O2,
    O2_2005,
    SO2,
    SO2_2005,
    TEN_MIN,
    WFLOW,
    Action,
    LoggerSpec,
    Publish,
    Upload,
    banned_plate,
    loggers_of,
    machine_plate,
    muck_plate,
    permit_plate,
)
from devkit.simulator.registry import REF_O2
from devkit.simulator.script import (
    ALLOWED_IN,
    BANNED_IN,
    BOILER_FAULT,
    COD_FAULT_HOUR,
    DUST_ZEROS,
    DV1_SILENT,
    HOURLY_UNTIL,
    IMPOSTOR_AT,
    L1_RESTART,
    L1_STOP,
    L4_PAUSE,
    MUCK_OUT,
    MUCK_TRUCK_IN,
    OLD_MACHINE_IN,
    PERMIT_IN,
    REGISTERED_IN,
    SPLIT_FAULTS,
    TREATMENT_OFF,
    UNKNOWN_AT,
    UNREGISTERED_IN,
    UNSENT_HOUR,
)

HEARTBEAT_AFTER = timedelta(minutes=15)
METER_EVERY = timedelta(minutes=5)
ARRAY_READINGS = 6  # T1 publishes 6 readings (30 minutes) per message
KEEP_RECORDS = timedelta(days=7)


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

    def l4_running(self, t: datetime, scripted: bool) -> bool:
        return _on(t, (8, 0), (18, 0)) and (scripted or not _on(t, *L4_PAUSE))

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
                "P4": 80.0 * rng.uniform(0.9, 1.0) if self.l4_running(t, scripted) else 0.8,
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
            out += self._scripted_vehicles(day)
        return out

    def _scripted_vehicles(self, day: datetime) -> list[Action]:
        """Non-road machinery under the standing rules, and the muck truck's exit."""
        out: list[Action] = []
        machine = {"fuel": "柴油", "vehicle_class": "非道路移动机械"}
        for when, n, stage, code in (
            (OLD_MACHINE_IN, 1, "国二", f"13J1{self.k:06d}"),
            (UNREGISTERED_IN, 2, "国三", ""),
            (REGISTERED_IN, 3, "国三", f"13J3{self.k:06d}"),
        ):
            passage: dict[str, object] = {
                "plate": machine_plate(self.k, n),
                "emission_stage": stage,
                **machine,
            }
            if code:
                passage["registration_code"] = code
            out.append(self._passage(_at(day, when), "in", passage))
        truck: dict[str, object] = {
            "plate": muck_plate(self.k),
            "emission_stage": "国五",
            "fuel": "柴油",
            "vehicle_class": "重型货车",
        }
        out.append(self._passage(_at(day, MUCK_TRUCK_IN), "in", truck))
        out.append(self._passage(_at(day, MUCK_OUT), "out", {**truck, "cargo": "渣土"}))
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
