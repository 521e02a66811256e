"""Performance grades: registry defaults per grade and key, the enterprise's plan over them,
dated grade changes, the evidence and sentences that say where the plan came from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.anomalies.messages import summary
from gateway.anomalies.model import Anomaly
from gateway.errors import ConfigError
from gateway.model import Point, to_ns
from gateway.plans import grade_at, plan_for
from gateway.regime import AlertSpec, Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules.curtailment import CurtailmentExceeded
from gateway.rules.shutdown import ProductionDuringShutdown

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 Beijing
GRADES = {
    "A": {},  # exempt at every level
    "B": {"orange": {"curtail_all": 30}, "red": {"curtail_all": 50}},
    "C": {"orange": {"stop_all": True}, "red": {"stop_all": True}},
}


def plant(ident: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "region": "city-a",
        "meters": [{"id": "P1", "role": "production", "line": "L1"}],
        "lines": [{"id": "L1"}],
        **extra,
    }


REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "grades": GRADES,
            "enterprises": [
                plant("E1", grade="A"),
                plant("E2", grade="C"),
                plant(  # its own orange plan names a responsible person: it governs
                    "E3",
                    grade="C",
                    plans={
                        "orange": {
                            "curtail": {"L1": 20},
                            "responsible": "张伟",
                            "contact": "0311-86001234",
                        }
                    },
                ),
                plant(  # B until 2026-12-01 (Beijing), C from then
                    "E4",
                    grade="B",
                    grade_changes=[{"since": "2026-12-01T12:00:00+08:00", "grade": "C"}],
                ),
            ],
        }
    )
)


def orange(regime: Regime) -> None:
    regime.add_alert(
        AlertSpec.model_validate(
            {
                "level": "orange",
                "regions": ["city-a"],
                "starts_at": T0,
                "ends_at": T0 + timedelta(days=1),
            }
        )
    )


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    orange(regime)
    yield regime
    regime.close()


def run(rule: ProductionDuringShutdown, ent: str, minutes: range) -> list[Anomaly]:
    out: list[Anomaly] = []
    for minute in minutes:
        tags = (("enterprise", ent), ("meter", "P1"), ("role", "production"), ("line", "L1"))
        fields = (("p_kw", 300.0), ("running", True))
        point = Point("power", tags, fields, to_ns(T0 + timedelta(minutes=minute)))
        out += rule.on_points([point], T0)
    return out


def test_a_c_grade_plant_runs_under_its_grade_default_stop(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    (opened,) = run(rule, "E2", range(0, 140, 5))
    assert opened.started_at == T0 + timedelta(hours=2)
    (source,) = opened.evidence["shutdown"]["sources"]
    assert source["plan"] == {"origin": "grade", "level": "orange", "grade": "C"}
    zh, en = summary(opened), summary(opened, "en")
    assert "依据重污染天气橙色预警，按绩效分级C级企业默认管控措施" in zh
    assert "the default plan of grade C" in en and "UTC" not in zh + en


def test_an_exempt_a_grade_plant_raises_nothing(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert run(rule, "E1", range(0, 600, 5)) == []
    assert plan_for(REGISTRY.enterprise("E1"), "orange", T0) is None  # type: ignore[arg-type]


def test_the_enterprise_plan_overrides_its_grade_default(regime: Regime) -> None:
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    assert run(rule, "E3", range(0, 600, 5)) == []  # its plan curtails, it does not stop
    ent = REGISTRY.enterprise("E3")
    assert ent is not None
    found = plan_for(ent, "orange", T0)
    assert found is not None and found.origin == "enterprise" and found.cut("L1") == 20
    red = plan_for(ent, "red", T0)  # no plan of its own for red: the grade's stop
    assert red is not None and red.origin == "grade" and red.stops("L1")


def energy(at: datetime, kwh: float, ent: str) -> Point:
    tags = (("enterprise", ent), ("meter", "P1"), ("role", "production"), ("line", "L1"))
    return Point("power", tags, (("p_kw", kwh), ("energy_kwh", kwh), ("running", True)), to_ns(at))


def over_the_cut(regime: Regime) -> list[Anomaly]:
    """EC2 over its own plan's 20 % cut under orange."""
    rule = CurtailmentExceeded(lambda: REGISTRY, regime)
    for day in range(1, 4):
        for h in range(24):
            rule.on_points(
                [energy(T0 - timedelta(days=day, hours=-h, minutes=-30), 1000.0, "E3")], T0
            )
    found: list[Anomaly] = []
    for h in range(6):  # 20 %: allowed 4 x 1000 x 0.8 x 1.1 = 3520 kWh; 950 an hour = 3800
        found += rule.on_points([energy(T0 + timedelta(hours=h, minutes=30), 950.0, "E3")], T0)
    return found


def test_the_enterprise_plan_curtailment_carries_its_responsible_person(regime: Regime) -> None:
    (opened,) = over_the_cut(regime)
    assert opened.evidence["percent"] == 20
    plan = opened.evidence["sources"][0]["plan"]
    assert plan == {
        "origin": "enterprise",
        "level": "orange",
        "grade": "C",
        "responsible": "张伟",
        "contact": "0311-86001234",
    }
    zh, en = summary(opened), summary(opened, "en")
    assert "按企业“一厂一策”应急减排方案，方案责任人张伟，联系方式0311-86001234" in zh
    assert "responsible: 张伟; contact: 0311-86001234" in en


def test_a_dated_grade_change_picks_the_defaults_from_then_on(regime: Regime) -> None:
    ent = REGISTRY.enterprise("E4")
    assert ent is not None
    change = datetime(2026, 12, 1, 4, tzinfo=UTC)  # 12:00 Beijing
    assert grade_at(ent, change - timedelta(seconds=1)) == ("B", None)
    assert grade_at(ent, change) == ("C", change)
    rule = ProductionDuringShutdown(lambda: REGISTRY, regime)
    # B curtails until 12:00 Beijing; C stops from then: its grace counts from the change
    found = run(rule, "E4", range(0, 8 * 60, 5))
    assert [a.started_at for a in found] == [change + timedelta(hours=2)]
    assert found[0].evidence["shutdown"]["since"] == change.isoformat()


def test_a_grade_change_given_as_a_date_is_beijing_midnight() -> None:
    data = RegistryFile.model_validate(
        {
            "enterprises": [
                plant(
                    "E1",
                    grade="B",
                    grade_changes=[{"since": datetime(2027, 1, 1).date(), "grade": "A"}],
                )
            ]
        }
    )
    (change,) = data.enterprises[0].grade_changes
    assert change.since.isoformat() == "2027-01-01T00:00:00+08:00"


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[[enterprises]]\nid = "E1"\ngrade = "E"\n', ["enterprises[0].grade", "'A'"]),
        (
            '[[enterprises]]\nid = "E1"\n[[enterprises.grade_changes]]\nsince = 2027-01-01\n'
            'grade = "甲"\n',
            ["enterprises[0].grade_changes[0].grade"],
        ),
        ("[grades.E.orange]\nstop_all = true\n", ["grades.E"]),
        ('[grades.B.orange]\nstop_lines = ["L1"]\n', ["grades.B.orange", "names no line"]),
        ("[grades.B.orange]\ncurtail_all = 130\n", ["grades.B.orange.curtail_all", "100"]),
        ("[grades.B.purple]\ncurtail_all = 30\n", ["grades.B.purple"]),
        (
            '[[enterprises]]\nid = "E1"\n[enterprises.plans.red]\ncurtail = { L1 = 0 }\n',
            ["enterprises[0].plans.red.curtail.L1", "greater than 0"],
        ),
    ],
)
def test_registry_refuses_bad_grades(tmp_path: Path, toml: str, words: list[str]) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Registry.load(path)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


@pytest.mark.parametrize("grade", ["A+", "A", "B", "C", "D", "引领性", "非重点"])
def test_every_grade_of_the_scheme_loads(grade: str) -> None:
    ent = RegistryFile.model_validate({"enterprises": [{"id": "E1", "grade": grade}]})
    assert ent.enterprises[0].grade == grade
