"""The simulated enterprises' devices: HJ 212 loggers (MNs, passwords, SM4 keys, versions), the
pollutant codes they send, the actions a day is made of (uploads and MQTT messages, on the
devices' clock: Beijing time) and the plates the gate reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
TEN_MIN = timedelta(minutes=10)
HOUR = timedelta(hours=1)

PASSWORD = "sim212"
SO2, NOX, DUST, O2, FLOW = "a21026", "a21002", "a34013", "a19001", "a00000"
COD, NH3N, WFLOW, NMHC = "w01018", "w21003", "w00000", "a24088"
# HJ/T 212-2005 codes of the boiler stack: O2, flue-gas flow, SO2, NOx, particulates
O2_2005, FLOW_2005, SO2_2005, NOX_2005, DUST_2005 = "S01", "B02", "02", "03", "01"


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


def mn_of(k: int, suffix: str) -> str:
    return f"SIM{k:04d}{suffix}".ljust(24, "0")


def source_of(k: int) -> str:
    """The loopback address enterprise `SIM{k}`'s loggers connect from (each plant behind its
    own address) when the gateway is on this machine."""
    return f"127.0.{10 + k // 250}.{1 + k % 250}"


def owner_of(enterprise: str, subject: str) -> str:
    """The simulated enterprise an anomaly is about: refused frames from an unregistered MN
    belong to no enterprise in the registry, but their source address is the plant's."""
    found = re.fullmatch(r"address:127\.0\.(\d+)\.(\d+)", subject)
    if found is None or int(found.group(1)) < 10:
        return enterprise
    return f"SIM{(int(found.group(1)) - 10) * 250 + int(found.group(2)) - 1}"


def sm4_key_of(k: int) -> str:
    return f"{k:04d}".rjust(32, "5")


def banned_plate(k: int) -> str:
    return f"冀A4{k:04d}"


def machine_plate(k: int, n: int) -> str:
    """The scripted day's non-road machinery (1: 国二, 2: unregistered, 3: registered)."""
    return f"冀J{n}{k:04d}"


def muck_plate(k: int) -> str:
    """The 国五 truck that leaves with muck under the orange plan."""
    return f"冀K5{k:04d}"


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
