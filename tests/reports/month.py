"""A simulated March 2026 for two enterprises, fed through the real rules engine (every rule of
the catalogue) hour by hour, with the same points written to a real InfluxDB: hourly COD of one
wastewater logger each, 15-minute readings of one production meter each, a few faults, a
shutdown order each and an orange alert; the cases the alarms open are handled by an officer.

What is scripted (Beijing time):
- E1 (county C1): COD 65 mg/L (limit 50) at 03:00 every fourth day; its 05:00 record missing on
  the 3rd, 7th and 12th (that `data_gap` joins the 12th's case); line L1 runs 06:00-22:00, and
  under the order of the 15th (08:00 to the 16th 08:00) keeps running until 12:00
  (`production_during_shutdown` after the 2 h grace).
- E2 (county C2): COD 70 mg/L at 10:00 every fifth day; logger and meter silent the 20th to the
  23rd (so 648 of 744 hours); stopped for its order of the 26th (00:00-12:00).
- An orange alert over the city C on the 20th (E1 has data, E2 none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gateway.anomalies.store import AnomalyStore
from gateway.cases.store import CaseStore, policy
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, OrderSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules import catalog
from gateway.rules.engine import RuleEngine
from tests.reports.helpers import CST, Clock, handle, hourly, write_points

START = datetime(2026, 3, 1, tzinfo=CST)
END = datetime(2026, 4, 1, tzinfo=CST)
HOURS = 31 * 24
E2_SILENT = (datetime(2026, 3, 20, tzinfo=CST), datetime(2026, 3, 24, tzinfo=CST))
E1_ORDER = (datetime(2026, 3, 15, 8, tzinfo=CST), datetime(2026, 3, 16, 8, tzinfo=CST))
E2_ORDER = (datetime(2026, 3, 26, tzinfo=CST), datetime(2026, 3, 26, 12, tzinfo=CST))
ALERT = (datetime(2026, 3, 20, tzinfo=CST), datetime(2026, 3, 21, tzinfo=CST))
VERDICTS = ("confirmed", "false_alarm", "device_fault", "false_alarm", "confirmed")

REGISTRY = {
    "regions": [
        {"id": "C", "name": "滨江市", "level": "city"},
        {"id": "C1", "name": "东城区", "parent": "C", "level": "county"},
        {"id": "C2", "name": "西城区", "parent": "C", "level": "county"},
    ],
    "enterprises": [
        {
            "id": ent,
            "name": name,
            "region": region,
            "outlets": [
                {
                    "id": outlet,
                    "mn": mn,
                    "password": "123456",
                    "kind": "water",
                    "pollutants": {"w01018": {"limit": 50, "unit": "mg/L"}},
                }
            ],
            "meters": [{"id": "P1", "role": "production", "line": "L1", "on_threshold_kw": 50}],
            "lines": [{"id": "L1"}],
        }
        for ent, name, region, outlet, mn in (
            ("E1", "东城化工", "C1", "DW1", "MNE1DW1"),
            ("E2", "西城造纸", "C2", "DW2", "MNE2DW2"),
        )
    ],
}
MN = {"E1": "MNE1DW1", "E2": "MNE2DW2"}
OUTLET = {"E1": "DW1", "E2": "DW2"}


@dataclass
class Month:
    registry: Registry
    store: AnomalyStore
    cases: CaseStore
    regime: Regime
    database: str
    received: dict[str, int]  # MN -> hours with a record, as scripted

    def close(self) -> None:
        for s in (self.store, self.cases, self.regime):
            s.close()


def _silent(ent: str, t: datetime) -> bool:
    return ent == "E2" and E2_SILENT[0] <= t < E2_SILENT[1]


def _running(ent: str, t: datetime) -> bool:
    if ent == "E2" and E2_ORDER[0] <= t < E2_ORDER[1]:
        return False
    if ent == "E1" and E1_ORDER[0] + timedelta(hours=4) <= t < E1_ORDER[1]:
        return False
    return 6 <= t.hour < 22


def _hour_points(t: datetime) -> tuple[list[Point], list[Point]]:
    """(hourly records, meter readings) of the hour starting at `t`."""
    records, readings = [], []
    for ent in ("E1", "E2"):
        if _silent(ent, t):
            continue
        cod = 20.0 + (t.hour * 7 + t.day * 3) % 13  # never the same six hours running
        if ent == "E1" and t.hour == 3 and t.day % 4 == 0:
            cod = 65.0
        if ent == "E2" and t.hour == 10 and t.day % 5 == 0:
            cod = 70.0
        missing = ent == "E1" and t.hour == 5 and t.day in (3, 7, 12)
        if not missing:
            records.append(hourly(ent, OUTLET[ent], MN[ent], t, "w01018", cod))
            records.append(hourly(ent, OUTLET[ent], MN[ent], t, "w00000", 12.0 + t.hour % 5))
        for quarter in range(4):
            at = t + timedelta(minutes=15 * quarter)
            running = _running(ent, at)
            tags = (("enterprise", ent), ("meter", "P1"), ("role", "production"), ("line", "L1"))
            fields = (("p_kw", 300.0 + quarter if running else 2.0), ("running", running))
            readings.append(Point("power", tags, fields, to_ns(at)))
    return records, readings


def build(directory: Path, influx_url: str, database: str) -> Month:
    registry = Registry(RegistryFile.model_validate(REGISTRY))
    clock = Clock(START)
    store = AnomalyStore(directory / "anomalies.sqlite")
    cases = CaseStore(directory / "cases.sqlite", policy({"data_gap"}), clock=clock)
    store.add_listener(cases.on_anomaly)
    regime = Regime(directory / "regime.sqlite")
    regime.within = registry.regions.within
    for ent, (start, end) in (("E1", E1_ORDER), ("E2", E2_ORDER)):
        regime.add_order(OrderSpec(kind="shutdown", enterprise=ent, starts_at=start, ends_at=end))
    regime.add_alert(AlertSpec(level="orange", regions=["C"], starts_at=ALERT[0], ends_at=ALERT[1]))
    rules = catalog.build(
        catalog.Context(registry=lambda: registry, regime=regime, started_at=START)
    )
    engine = RuleEngine(store, rules, clock=clock)
    everything: list[Point] = []
    received = {mn: 0 for mn in MN.values()}
    for h in range(HOURS):
        t = START + timedelta(hours=h)
        records, readings = _hour_points(t)
        for quarter in range(4):  # readings in time order, the hour's record at its end
            clock.now = t + timedelta(minutes=15 * quarter + 1)
            engine.on_points(readings[quarter::4])
        clock.now = t + timedelta(hours=1, minutes=2)
        engine.on_points(records)
        for mn in {p.tag("mn") for p in records}:
            received[str(mn)] += 1
        everything += records + readings
    write_points(influx_url, database, everything)
    _handle_cases(cases)
    return Month(registry, store, cases, regime, database, received)


def _handle_cases(cases: CaseStore) -> None:
    """Of every six cases in opening order: one left new, one signed only, four verified
    (by `VERDICTS`, in turn) and three of those closed."""
    opened = cases.opened_between(START, END)
    for n, case in enumerate(opened):
        at = case.opened_at
        step = n % 6
        if step == 0:
            continue
        if step == 1:
            handle(cases, case, at, sign_h=2.0 + n % 3)
            continue
        verdict = VERDICTS[n % len(VERDICTS)]
        close_h = None if step == 5 else 8.0 + n % 4
        handle(cases, case, at, sign_h=1.0 + n % 2, verdict=verdict, close_h=close_h)
