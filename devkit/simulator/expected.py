"""The anomalies the scripted day must give, derived from the same constants (`script`), in
the form the replay compares them (`Expected`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from devkit.simulator.devices import (
    BEIJING,
    COD,
    SO2,
    banned_plate,
    loggers_of,
    machine_plate,
    muck_plate,
    source_of,
)
from devkit.simulator.registry import REF_O2, SO2_LIMIT
from devkit.simulator.script import (
    BANNED_IN,
    BOILER_FAULT,
    COD_FAULT_HOUR,
    DUST_ZEROS,
    HOURLY_UNTIL,
    L1_RESTART,
    L4_PAUSE,
    MUCK_OUT,
    OLD_MACHINE_IN,
    ORANGE,
    RED,
    SHUTDOWN_FROM,
    SPLIT_FAULTS,
    TREATMENT_OFF,
    UNREGISTERED_IN,
    UNSENT_HOUR,
)

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
    "plan_indicator_exceeded",
)

WALL_CLOCK: Literal["wall clock"] = "wall clock"
WALL_CLOCK_TYPES = frozenset({"device_offline", "auth_failure", "unregistered_device"})


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
        # L4 runs through its daily stop: from the end of the grace to the end of the window
        Expected(
            ent,
            "production_during_shutdown",
            f"line:{ent}/L4",
            at(*L4_PAUSE[0]) + SHUTDOWN_GRACE,
            at(*L4_PAUSE[1]),
        ),
        Expected(
            ent,
            "banned_vehicle_entry",
            f"gate:{ent}/G1/{banned_plate(k)}",
            at(*BANNED_IN),
            at(*BANNED_IN),
        ),
        # L2's load above the orange plan's 70 % from the grace's end until it stops
        Expected(ent, "plan_indicator_exceeded", f"line:{ent}/L2/load", alert_grace, at(ORANGE[1])),
        *(
            Expected(ent, "banned_vehicle_entry", f"gate:{ent}/G1/{plate}", at(*when), at(*when))
            for when, plate in (
                (OLD_MACHINE_IN, machine_plate(k, 1)),  # 国二 machinery: a standing rule
                (UNREGISTERED_IN, machine_plate(k, 2)),  # no registration code
                (MUCK_OUT, f"{muck_plate(k)}/out"),  # leaves with muck under orange
            )
        ),
        Expected(ent, "data_gap", water, at(HOURLY_UNTIL), None),
        Expected(ent, "device_offline", f"mn:{lg['DV1'].mn}", WALL_CLOCK, None),
        Expected(ent, "auth_failure", water, WALL_CLOCK, None),  # closes after 15 quiet min
        Expected(
            "unregistered", "unregistered_device", f"address:{source_of(k)}", WALL_CLOCK, None
        ),
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
