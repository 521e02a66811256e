"""The plan check at registry load (可监测、可核查): each plan measure no registered device can
verify is a problem, with its code, enterprise, plan key and a Chinese sentence; check-config
prints them as warnings, not errors."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from gateway.checks import check_config
from gateway.plan_check import Problem, check_plans, problems_of
from gateway.registry import Registry, RegistryFile
from tests.conftest import REGISTRY as CONFTEST_REGISTRY
from tests.conftest import write_config

MN = "MN0000000000000000000088"

CLEAN: dict[str, Any] = {
    "enterprises": [
        {
            "id": "E1",
            "region": "city-a",
            "outlets": [
                {
                    "id": "DA001",
                    "mn": MN,
                    "password": "123456",
                    "pollutants": {
                        "a21026": {"limit": 35, "control": {"orange": 25, "event": 20}},
                        "a01012": {"limit": 200},
                    },
                    "codes": ["KT01"],
                }
            ],
            "meters": [
                {"id": "P1", "role": "production", "line": "L1"},
                {"id": "P2", "role": "production", "line": "L2"},
            ],
            "gates": [{"id": "G1"}],
            "lines": [
                {
                    "id": "L1",
                    "indicators": [
                        {"id": "furnaces", "name": "在产窑炉数", "source": "running"},
                        {
                            "id": "kiln",
                            "name": "窑温",
                            "source": "device",
                            "mn": MN,
                            "code": "KT01",
                        },
                        {
                            "id": "flue",
                            "name": "烟温",
                            "source": "device",
                            "mn": MN,
                            "code": "a01012",
                        },
                    ],
                },
                {
                    "id": "L2",
                    "indicators": [
                        {"id": "load", "source": "load", "meter": "P2", "rated_kw": 800}
                    ],
                },
            ],
            "transport": {"orange": {"max_banned_stage": 5}},
            "plans": {
                "orange": {"stop_lines": ["L1"], "curtail": {"L2": 30}},
                "event": {
                    "indicators": {
                        "L1/furnaces": {"max": 1},
                        "L1/kiln": {"max": 900},
                        "L1/flue": {"max": 150},
                        "L2/load": {"max": 60},
                    }
                },
            },
        }
    ]
}


def problems(change: Any = None) -> list[Problem]:
    data = copy.deepcopy(CLEAN)
    if change is not None:
        change(data["enterprises"][0])
    return check_plans(Registry(RegistryFile.model_validate(data)))


def test_a_plan_every_measure_of_which_a_device_verifies_has_no_problem() -> None:
    assert problems() == []


def test_a_stopped_or_curtailed_line_without_a_production_meter() -> None:
    def change(ent: Any) -> None:
        ent["meters"] = [{"id": "T1", "role": "treatment", "line": "L1"}]
        ent["lines"][0]["indicators"] = ent["lines"][0]["indicators"][1:]
        ent["lines"][1]["indicators"][0]["meter"] = "T1"
        del ent["plans"]["event"]["indicators"]["L1/furnaces"]

    found = problems(change)
    assert [(p.code, p.enterprise, p.key) for p in found] == [
        ("stop_without_meter", "E1", "orange"),
        ("curtail_without_meter", "E1", "orange"),
    ]
    assert found[0].text == "橙色预警方案要求产线L1停产，但该产线没有生产电表，无法核查是否停产。"
    assert "产线L2限产" in found[1].text


def test_a_running_count_on_a_line_without_production_meters() -> None:
    def change(ent: Any) -> None:
        ent["meters"] = [{"id": "P2", "role": "production", "line": "L2"}]
        ent["plans"]["orange"]["stop_lines"] = []

    [found] = problems(change)
    assert (found.code, found.key) == ("indicator_without_meter", "event")
    assert "在产窑炉数" in found.text and "运行台数" in found.text


def test_an_indicator_from_an_unregistered_device_or_a_code_it_does_not_send() -> None:
    def unregistered(ent: Any) -> None:
        ent["lines"][0]["indicators"][1]["mn"] = "MN-NOT-INSTALLED"

    def not_sent(ent: Any) -> None:
        ent["outlets"][0]["codes"] = []

    [missing] = problems(unregistered)
    assert (missing.code, missing.key) == ("indicator_device_unregistered", "event")
    assert "MN-NOT-INSTALLED" in missing.text and "未登记" in missing.text
    [silent] = problems(not_sent)
    assert silent.code == "indicator_code_not_sent" and "KT01" in silent.text


def test_transport_rules_of_an_enterprise_without_gates() -> None:
    def change(ent: Any) -> None:
        ent["gates"] = []

    [found] = problems(change)
    assert (found.code, found.key) == ("transport_without_gates", "orange")
    assert found.text == "橙色预警的车辆管控要求无法核查：企业未登记门禁。"
    # the default rules of an enterprise that writes none are no plan of its own
    data = copy.deepcopy(CLEAN)
    del data["enterprises"][0]["transport"]
    data["enterprises"][0]["gates"] = []
    assert check_plans(Registry(RegistryFile.model_validate(data))) == []


def test_a_limit_under_a_plan_key_that_does_not_tighten() -> None:
    def change(ent: Any) -> None:
        limit = ent["outlets"][0]["pollutants"]["a21026"]
        limit["changes"] = [{"since": "2027-01-01", "limit": 10}]  # ultra-low from 2027

    found = problems(change)
    assert [(p.code, p.key) for p in found] == [
        ("limit_not_tightened", "orange"),
        ("limit_not_tightened", "event"),
    ]
    assert "赛时管控限值20不低于其排放限值10" in found[1].text


def test_every_text_is_chinese_and_problems_are_computed_once_per_registry() -> None:
    def everything(ent: Any) -> None:
        ent["gates"] = []
        ent["meters"] = []
        ent["lines"][1]["indicators"] = []
        del ent["plans"]["event"]["indicators"]["L2/load"]
        ent["outlets"][0]["codes"] = []

    found = problems(everything)
    assert {p.code for p in found} == {
        "stop_without_meter",
        "curtail_without_meter",
        "indicator_without_meter",
        "indicator_code_not_sent",
        "transport_without_gates",
    }
    for problem in found:
        assert re.fullmatch(r"[^A-Za-z]*", re.sub(r"[A-Z]+\d+|L\d|KT01", "", problem.text))
    registry = Registry(RegistryFile.model_validate(CLEAN))
    assert problems_of(registry) is problems_of(registry)


def test_check_config_prints_plan_problems_as_warnings_not_errors(tmp_path: Path) -> None:
    registry = CONFTEST_REGISTRY + (
        '\n[enterprises.plans.orange]\nstop_lines = ["NO-METER"]\n'
        if "[enterprises.plans" not in CONFTEST_REGISTRY
        else ""
    )
    path = write_config(
        tmp_path / "gw", "http://127.0.0.1:8086", "db", registry, api={"enabled": False}
    )
    report = check_config(path)
    assert report.problems == [] and report.loaded is not None
    [warning] = [w for w in report.warnings if "stop_without_meter" in w]
    assert "enterprises.E1: orange: 橙色预警方案要求产线NO-METER停产" in warning
