"""Recurring windows as obligations: a daily ozone-season window, 错峰生产 for cement clinker
lines (by industry), heating-duty lines exempt and their make-up, a schedule window joining an
alert plan, and the registry's refusals."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devkit import localstack
from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.errors import ConfigError
from gateway.influx.reader import InfluxQLReader
from gateway.model import Point, to_ns
from gateway.regime import AlertSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.obligation import curtailment_sources, shutdown_sources
from gateway.rules.shutdown import ProductionDuringShutdown
from gateway.schedules import edges_before, window_at
from gateway.status.make_up import make_up, tally
from tests.conftest import wait_rows

BJ = timedelta(hours=8)
JULY_10 = datetime(2026, 7, 10, tzinfo=UTC) - BJ  # Beijing midnight
OZONE = {
    "name": "臭氧季涉挥发性有机物工序",
    "lines": ["L1"],
    "stop": True,
    "hours": ["11:00-17:00"],
    "months": [6, 7, 8, 9],
}
STAGGERED = {
    "name": "错峰生产",
    "industries": ["cement"],
    "stop": True,
    "from": "11-15",
    "to": "03-15",
    "make_up_days": 30,
}
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "schedules": [STAGGERED],
            "enterprises": [
                {
                    "id": "E3",
                    "region": "city-a",
                    "meters": [{"id": "P1", "role": "production", "line": "L1"}],
                    "lines": [{"id": "L1", "name": "喷涂线"}],
                    "plans": {"orange": {"stop_lines": ["L1"]}},
                    "schedules": [
                        OZONE,
                        {"name": "夏季限产", "all": True, "curtail": 20, "months": [7]},
                    ],
                },
                {
                    "id": "EC",
                    "region": "city-b",
                    "industry": "cement",
                    "meters": [
                        {"id": "P1", "role": "production", "line": "L1"},
                        {"id": "P2", "role": "production", "line": "L2"},
                    ],
                    "lines": [{"id": "L1"}, {"id": "L2", "heating_duty": True}],
                },
            ],
        }
    )
)


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    yield regime
    regime.close()


def run(
    rule: ProductionDuringShutdown,
    first: datetime,
    minutes: range,
    ent: str = "E3",
    meter: str = "P1",
    running: bool = True,
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        tags = (("enterprise", ent), ("meter", meter), ("role", "production"), ("line", ""))
        fields = (("p_kw", 300.0 if running else 0.5), ("running", running))
        point = Point("power", tags, fields, to_ns(first + timedelta(minutes=minute)))
        out += rule.on_points([point], first)
    return out


def test_a_line_running_in_its_daily_window_opens_after_the_grace(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    found = run(rule, JULY_10, range(11 * 60, 17 * 60 + 1, 5))  # 11:00-17:00 Beijing
    opened, closed = found
    assert opened.started_at == JULY_10 + timedelta(hours=13)  # grace from 11:00
    (source,) = opened.evidence["shutdown"]["sources"]
    assert (source["kind"], source["ref"]) == ("schedule", "臭氧季涉挥发性有机物工序")
    assert source["schedule"] == {
        "name": "臭氧季涉挥发性有机物工序",
        "daily_hours": ["11:00-17:00"],
        "in_months": [6, 7, 8, 9],
    }
    assert closed.ended_at == JULY_10 + timedelta(hours=17)  # the window ended
    zh, en = summary(opened), summary(opened, "en")
    assert "依据错峰生产安排“臭氧季涉挥发性有机物工序”（6、7、8、9月，每日11:00-17:00）" in zh
    assert "2026-07-10 13:00" in zh and "UTC" not in zh + en
    assert "the schedule 臭氧季涉挥发性有机物工序 (in month 6, 7, 8, 9; daily 11:00-17:00)" in en


def test_a_line_within_its_allowed_hours_raises_nothing(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert run(rule, JULY_10, range(17 * 60, 35 * 60, 5)) == []  # 17:00 to 11:00 next day


def test_a_schedule_outside_its_months_raises_nothing(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    october = datetime(2026, 10, 10, tzinfo=UTC) - BJ
    assert run(rule, october, range(11 * 60, 17 * 60, 5)) == []


def test_a_schedule_window_joining_an_alert_plan_is_one_obligation(regime: Regime) -> None:
    regime.add_alert(  # orange 08:00-11:00 Beijing, then the schedule's 11:00-17:00
        AlertSpec.model_validate(
            {
                "level": "orange",
                "regions": ["city-a"],
                "starts_at": JULY_10 + timedelta(hours=8),
                "ends_at": JULY_10 + timedelta(hours=11),
            }
        )
    )
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    found = run(rule, JULY_10, range(8 * 60, 17 * 60 + 1, 5))
    assert {a.id for a in found} == {found[0].id}
    assert found[0].started_at == JULY_10 + timedelta(hours=10)  # grace from 08:00 only
    updated = [a for a in found if a.state == "open"][-1]
    assert [s["kind"] for s in updated.evidence["shutdown"]["sources"]] == [
        "alert plan",
        "schedule",
    ]
    assert updated.evidence["shutdown"]["since"] == (JULY_10 + timedelta(hours=8)).isoformat()
    assert found[-1].state == "closed" and found[-1].ended_at == JULY_10 + timedelta(hours=17)


def test_a_curtailment_schedule_is_a_source_of_its_percent(regime: Regime) -> None:
    ent = REGISTRY.enterprise("E3")
    assert ent is not None
    noon = JULY_10 + timedelta(hours=12)
    (source,) = curtailment_sources(ent, "L1", regime.in_force("E3", "city-a", noon))
    assert (source.kind, source.ref, source.percent) == ("schedule", "夏季限产", 20)
    assert (source.starts_at, source.ends_at) == (
        datetime(2026, 7, 1, tzinfo=UTC) - BJ,
        datetime(2026, 8, 1, tzinfo=UTC) - BJ,
    )
    august = regime.in_force("E3", "city-a", noon + timedelta(days=31))
    assert curtailment_sources(ent, "L1", august) == []


def test_staggered_production_stops_the_clinker_line_not_the_heating_duty_line(
    regime: Regime,
) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    december = datetime(2026, 12, 1, tzinfo=UTC) - BJ
    (opened,) = run(rule, december, range(0, 140, 5), ent="EC", meter="P1")
    assert opened.started_at == datetime(2026, 11, 15, tzinfo=UTC) - BJ + timedelta(days=16)
    assert (
        opened.evidence["shutdown"]["since"]
        == (datetime(2026, 11, 15, tzinfo=UTC) - BJ).isoformat()
    )
    assert "错峰生产安排“错峰生产”（每年11月15日至次年3月15日）" in summary(opened)
    assert run(rule, december, range(0, 600, 5), ent="EC", meter="P2") == []  # heating duty
    ent = REGISTRY.enterprise("EC")
    assert ent is not None
    in_force = regime.in_force("EC", "city-b", december)
    assert shutdown_sources(ent, "L2", in_force) == []
    spring = regime.in_force("EC", "city-b", datetime(2027, 3, 16, tzinfo=UTC) - BJ)
    assert shutdown_sources(ent, "L1", spring) == []  # 03-15 is the last day


def test_an_enterprise_schedule_replaces_its_industry_schedule_of_the_same_name() -> None:
    own = {"name": "错峰生产", "lines": ["L1"], "stop": True, "from": "12-01", "to": "02-28"}
    data = RegistryFile.model_validate(
        {
            "schedules": [STAGGERED],
            "enterprises": [
                {"id": "E1", "industry": "cement", "lines": [{"id": "L1"}], "schedules": [own]},
                {"id": "E2", "industry": "steel", "lines": [{"id": "L1"}]},
            ],
        }
    )
    first, second = data.enterprises
    assert [(s.name, s.from_) for s in first.all_schedules()] == [("错峰生产", "12-01")]
    assert second.all_schedules() == []


def test_windows_and_edges_of_a_daily_window_past_midnight() -> None:
    data = RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "lines": [{"id": "L1"}],
                    "schedules": [
                        {
                            "name": "夜间",
                            "all": True,
                            "stop": True,
                            "hours": ["22:00-06:00"],
                            "months": [1],
                        }
                    ],
                }
            ]
        }
    )
    (night,) = data.enterprises[0].schedules
    two_am = datetime(2026, 2, 1, 2, tzinfo=UTC) - BJ  # the window of 31 January
    assert window_at(night, two_am) == (
        datetime(2026, 1, 31, 22, tzinfo=UTC) - BJ,
        datetime(2026, 2, 1, 6, tzinfo=UTC) - BJ,
    )
    assert window_at(night, two_am + timedelta(days=1)) is None  # February
    edges = edges_before(night, two_am)
    assert [next(edges) for _ in range(3)] == [
        datetime(2026, 1, 31, 22, tzinfo=UTC) - BJ,
        datetime(2026, 1, 31, 6, tzinfo=UTC) - BJ,
        datetime(2026, 1, 30, 22, tzinfo=UTC) - BJ,
    ]


# -- make-up of staggered production by heating-duty lines ------------------------------


def test_the_make_up_tally_of_a_heating_duty_line() -> None:
    days = {date(2026, 12, d): d in (1, 2, 4, 7, 10) for d in (1, 2, 3, 4, 6, 7, 8, 10, 11)}
    assert tally(days, (date(2026, 12, 1), date(2026, 12, 6)), 5, date(2026, 12, 12)) == {
        "period": ["2026-12-01", "2026-12-05"],
        "make_up_until": "2026-12-10",
        "days_ran": 3,  # 1, 2, 4 (3 stopped, 5 without data)
        "days_made_up": 2,  # 6 and 8 (7 and 10 ran, 9 without data, 11 is too late)
        "still_owed": 1,
        "final": True,
    }


def write_lines(url: str, database: str, lines: list[str]) -> None:
    request = urllib.request.Request(
        f"{url}/write?db={database}&precision=s", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 204


async def test_make_up_read_from_stored_power(
    influx: localstack.ManagedProcess, database: str
) -> None:
    period = {**STAGGERED, "from": "12-01", "to": "12-05", "make_up_days": 5}
    registry = RegistryFile.model_validate(
        {"schedules": [period], "enterprises": [REGISTRY.data.enterprises[1].model_dump()]}
    )
    ent = registry.enterprises[0]
    localstack.create_database(influx.url, database)
    ran = {1: 300.0, 2: 300.0, 3: 0.5, 4: 300.0, 6: 0.5, 7: 300.0, 8: 0.5, 10: 300.0, 11: 0.5}
    lines = []
    for day, kw in ran.items():
        for hour in range(0, 24, 3):
            at = datetime(2026, 12, day, hour, tzinfo=UTC) - BJ
            lines.append(
                f"power,enterprise=EC,meter=P2,role=production p_kw={kw} {int(at.timestamp())}"
            )
    clinker = int((datetime(2026, 12, 3, tzinfo=UTC) - BJ).timestamp())
    lines.append(f"power,enterprise=EC,meter=P1,role=production p_kw=300 {clinker}")  # not L2
    write_lines(influx.url, database, lines)
    await wait_rows(influx.url, database, "SELECT p_kw FROM power", len(lines), needs=("p_kw",))
    now = datetime(2026, 12, 12, 12, tzinfo=UTC)
    (found,) = await make_up(InfluxQLReader(influx.url, database), ent, now)
    assert found == {
        "schedule": "错峰生产",
        "line": "L2",
        "period": ["2026-12-01", "2026-12-05"],
        "make_up_until": "2026-12-10",
        "days_ran": 3,
        "days_made_up": 2,
        "still_owed": 1,
        "final": True,
    }
    during = await make_up(
        InfluxQLReader(influx.url, database), ent, datetime(2026, 12, 5, tzinfo=UTC)
    )
    assert [(d["days_ran"], d["days_made_up"], d["final"]) for d in during] == [(3, 0, False)]


# -- registry refusals ------------------------------------------------------------------


def registry_with(schedule: dict[str, Any], where: str = "enterprise") -> str:
    body = "".join(f"{k} = {_toml(v)}\n" for k, v in schedule.items())
    if where == "registry":
        return f'[[enterprises]]\nid = "E1"\nlines = [{{ id = "L1" }}]\n[[schedules]]\n{body}'
    return (
        f'[[enterprises]]\nid = "E1"\nlines = [{{ id = "L1" }}]\n[[enterprises.schedules]]\n{body}'
    )


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


BASE = {"name": "s", "lines": ["L1"], "stop": True, "hours": ["11:00-17:00"]}


@pytest.mark.parametrize(
    ("schedule", "where", "words"),
    [
        ({**BASE, "curtail": 30}, "enterprise", ["schedules[0]", "one of them"]),
        ({**BASE, "stop": False}, "enterprise", ["schedules[0]", "one of them"]),
        ({**BASE, "stop": False, "curtail": 0}, "enterprise", ["schedules[0].curtail"]),
        ({**BASE, "hours": ["11:00-11:00"]}, "enterprise", ["schedules[0].hours", "empty"]),
        ({**BASE, "hours": ["25:00-17:00"]}, "enterprise", ["schedules[0].hours", "HH:MM"]),
        ({**BASE, "months": [13]}, "enterprise", ["schedules[0].months[0]"]),
        ({**BASE, "from": "11-15"}, "enterprise", ["from and to go together"]),
        ({**BASE, "from": "11-31", "to": "03-15"}, "enterprise", ["schedules[0].from", "11-31"]),
        ({**BASE, "from": "02-29", "to": "03-15"}, "enterprise", ["every year"]),
        ({**BASE, "months": [6], "from": "11-15", "to": "03-15"}, "enterprise", ["not both"]),
        ({"name": "s", "lines": ["L1"], "stop": True}, "enterprise", ["needs hours"]),
        ({**BASE, "make_up_days": 30}, "enterprise", ["make_up_days needs stop and from/to"]),
        ({**BASE, "lines": ["L9"]}, "enterprise", ["unknown line 'L9'"]),
        ({**BASE, "all": True}, "enterprise", ["name lines or all"]),
        ({**BASE, "lines": []}, "enterprise", ["name lines or all"]),
        ({**BASE, "industries": ["cement"]}, "registry", ["schedules[0]", "names no line"]),
        ({**BASE, "lines": []}, "registry", ["schedules[0].industries"]),
        ({**BASE, "weekdays": [1]}, "enterprise", ["schedules[0].weekdays"]),
    ],
)
def test_registry_refuses_bad_schedules(
    tmp_path: Path, schedule: dict[str, Any], where: str, words: list[str]
) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(registry_with(schedule, where), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Registry.load(path)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_registry_refuses_a_schedule_named_twice_and_a_bad_heating_duty(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    twice = registry_with(BASE) + "".join(f"{k} = {_toml(v)}\n" for k, v in BASE.items()).join(
        ["[[enterprises.schedules]]\n", ""]
    )
    path.write_text(twice, encoding="utf-8")
    with pytest.raises(ConfigError, match="appears twice"):
        Registry.load(path)
    path.write_text(
        '[[enterprises]]\nid = "E1"\n[[enterprises.lines]]\nid = "L1"\nheating_duty = "sometimes"\n'
    )
    with pytest.raises(ConfigError, match=r"lines\[0\].heating_duty"):
        Registry.load(path)
