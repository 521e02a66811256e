"""A device simulator: data loggers over TCP and meters and gates over MQTT, replaying a
scripted day for N enterprises with historical timestamps, faults included.

Each enterprise `SIM{k}` has one wastewater logger (hourly COD), one production and one
treatment meter on line L1, and a gate. The script of a day (Beijing time):

- hourly COD from 00:00; hour 03 is over the limit (`over_limit`);
- hour 05 is skipped: the logger back-fills it when the gateway asks (`data_gap`, closed as
  back-filled);
- 08:00-09:00 production runs with treatment off until 08:40 (`treatment_not_running`);
- a shutdown order from 10:00 (given by the caller); production runs 12:00-12:40
  (`production_during_shutdown`);
- under an orange alert (given by the caller) a 国四 diesel heavy truck enters at 14:30
  (`banned_vehicle_entry`); a 国五 one at 14:40 is allowed;
- the second logger `SIM{k}-B` sends one frame with a wrong password (`auth_failure`).

`speed` compresses wall-clock pacing between script steps (0 = as fast as possible); the
timestamps in the data are always the script's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiomqtt

from adapters.hj212.builder import build_frame, build_segment, execution_answer, request_answer
from adapters.hj212.cp import parse_cp, parse_hj212_time
from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import Frame


def mn_of(k: int, suffix: str = "A") -> str:
    return f"SIM{k:04d}{suffix}".ljust(24, "0")


def registry_toml(enterprises: int) -> str:
    """A registry for the simulated enterprises (all in region `sim-city`)."""
    out = []
    for k in range(enterprises):
        out.append(f"""
[[enterprises]]
id = "SIM{k}"
name = "Simulated plant {k}"
region = "sim-city"
  [[enterprises.outlets]]
  id = "DW1"
  mn = "{mn_of(k)}"
  password = "sim"
  lines = ["L1"]
  [enterprises.outlets.pollutants]
  w01018 = {{ limit = 50, unit = "mg/L" }}
  [[enterprises.outlets]]
  id = "DW2"
  mn = "{mn_of(k, "B")}"
  password = "sim"
  [[enterprises.meters]]
  id = "P1"
  role = "production"
  line = "L1"
  on_threshold_kw = 50
  [[enterprises.meters]]
  id = "T1"
  role = "treatment"
  line = "F1"
  on_threshold_kw = 5
  [[enterprises.facilities]]
  id = "F1"
  meters = ["T1"]
  [[enterprises.lines]]
  id = "L1"
  treatment = [{{ facility = "F1" }}]
  [[enterprises.gates]]
  id = "G1"
""")
    return "".join(out)


def hourly_frame(
    mn: str, pw: str, hour: datetime, value: float, qn: int, *, backfill: bool = False
) -> bytes:
    """A 2061 hourly COD upload asking for a 9014; `backfill` marks it RF=1."""
    head: list[tuple[str, str | int]] = [
        ("QN", f"{hour:%Y%m%d%H%M%S}{qn % 1000:03d}"),
        ("ST", "32"),
        ("CN", "2061"),
        ("PW", pw),
        ("MN", mn),
        ("Flag", 5),
    ]
    if backfill:
        head.append(("RF", 1))
    cp = f"DataTime={hour:%Y%m%d%H%M%S};w01018-Avg={value},w01018-Flag=N"
    return build_frame(build_segment(head, cp))


def cod(hour: int) -> float:
    return 65.0 if hour == 3 else 30.0 + hour % 4


@dataclass
class Logger:
    """One simulated data logger that answers the platform's back-fill requests."""

    k: int
    day: datetime
    client: DeviceClient
    sent: int = 0
    backfilled: list[datetime] = field(default_factory=list)

    @property
    def mn(self) -> str:
        return mn_of(self.k)

    async def upload(self, hour: int) -> None:
        self.sent += 1
        await self.client.send(
            hourly_frame(self.mn, "sim", self.day + timedelta(hours=hour), cod(hour), self.sent)
        )
        await self._until_ack()

    async def _until_ack(self) -> None:
        """Read until the 9014; answer history requests that arrive meanwhile."""
        while True:
            frame = await self.client.read_frame(10)
            if frame.cn == "9014":
                return
            if frame.cn in ("2061", "2051"):
                await self._backfill(frame)

    async def _backfill(self, request: Frame) -> None:
        await self.client.send(request_answer(request))
        params = parse_cp(request.cp).params
        begin = parse_hj212_time(params["BeginTime"])
        end = parse_hj212_time(params["EndTime"])
        hour = begin
        while hour <= end:
            self.sent += 1
            index = int((hour - self.day).total_seconds() // 3600)
            frame = hourly_frame(self.mn, "sim", hour, cod(index), self.sent, backfill=True)
            await self.client.send(frame)
            ack = await self.client.read_frame(10)
            assert ack.cn == "9014"
            self.backfilled.append(hour)
            hour += timedelta(hours=1)
        await self.client.send(execution_answer(request))


async def run_day(
    *,
    enterprises: int,
    day: datetime,
    hj212: tuple[str, int],
    mqtt: tuple[str, int],
    prefix: str = "pollution",
    speed: float = 0.0,
    on_step: Callable[[str], Awaitable[None] | None] | None = None,
) -> list[Logger]:
    """Play the scripted day; return the loggers (with what they back-filled)."""

    async def step(label: str) -> None:
        if on_step is not None:
            result = on_step(label)
            if result is not None:
                await result
        if speed:
            await asyncio.sleep(speed)

    loggers = [Logger(k, day, await DeviceClient.connect(*hj212)) for k in range(enterprises)]
    for hour in range(8):
        for logger in loggers:
            if hour != 5:  # the skipped hour, back-filled on request after hour 6 arrives
                await logger.upload(hour)
        await step(f"hour {hour:02d}:00 uploaded")
    intruder = await DeviceClient.connect(*hj212)
    for k in range(enterprises):
        await intruder.send(hourly_frame(mn_of(k, "B"), "wrong", day, 1.0, 1))
    await intruder.close()
    async with aiomqtt.Client(mqtt[0], mqtt[1]) as client:

        async def power(k: int, meter: str, moment: datetime, p_kw: float) -> None:
            payload = {"time": moment.strftime("%Y-%m-%dT%H:%M:%S"), "p_kw": p_kw}
            await client.publish(f"{prefix}/power/SIM{k}/{meter}", json.dumps(payload), qos=1)

        for minute in range(0, 61, 5):
            for k in range(enterprises):
                moment = day + timedelta(hours=8, minutes=minute)
                await power(k, "P1", moment, 300.0)
                await power(k, "T1", moment, 40.0 if minute >= 40 else 0.5)
            await step(
                f"08:{minute % 60:02d} production, treatment {'on' if minute >= 40 else 'off'}"
            )
        for k in range(enterprises):
            await power(k, "P1", day + timedelta(hours=9, minutes=30), 2.0)
        for minute in range(0, 41, 5):
            for k in range(enterprises):
                moment = day + timedelta(hours=12, minutes=minute)
                await power(k, "P1", moment, 280.0)
                await power(k, "T1", moment, 40.0)
            await step(f"12:{minute:02d} production under the shutdown order")
        for k in range(enterprises):
            await power(k, "P1", day + timedelta(hours=12, minutes=50), 1.0)
        for k in range(enterprises):
            trucks = [
                {
                    "time": (day + timedelta(hours=14, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "direction": "in",
                    "plate": f"冀A{k:05d}",
                    "emission_stage": "国四",
                    "fuel": "柴油",
                    "vehicle_class": "重型货车",
                },
                {
                    "time": (day + timedelta(hours=14, minutes=40)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "direction": "in",
                    "plate": f"冀B{k:05d}",
                    "emission_stage": "国五",
                    "fuel": "柴油",
                    "vehicle_class": "重型货车",
                },
            ]
            await client.publish(f"{prefix}/gate/SIM{k}/G1", json.dumps(trucks), qos=1)
        await step("14:30 trucks at the gates")
    for logger in loggers:
        await logger.client.close()
    return loggers
