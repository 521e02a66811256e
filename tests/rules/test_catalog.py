"""The one list of anomaly types and the rules built from it agree with each other and with
the rules' code (the API's copy of the list: tests/api/test_anomalies.py)."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from pathlib import Path

from gateway.anomalies.model import Anomaly
from gateway.anomalies.types import BY_NAME, FAMILIES, RULES, TYPES
from gateway.regime import Regime
from gateway.registry import Registry, RegistryFile
from gateway.rules import catalog

T0 = datetime(2025, 1, 10, tzinfo=UTC)


def _rules(tmp_path: Path) -> list[catalog.Rule]:
    registry = Registry(RegistryFile.model_validate({"enterprises": []}))
    context = catalog.Context(lambda: registry, Regime(tmp_path / "regime.db"), T0)
    return catalog.build(context)


def test_every_named_rule_has_a_factory_and_no_factory_is_unnamed() -> None:
    assert set(catalog.FACTORIES) == set(RULES)
    assert len({t.name for t in TYPES}) == len(TYPES)


def test_build_gives_one_rule_per_name_in_the_list_order(tmp_path: Path) -> None:
    assert [rule.name for rule in _rules(tmp_path)] == list(RULES)


def test_each_rule_raises_only_the_types_that_name_it(tmp_path: Path) -> None:
    for rule in _rules(tmp_path):
        source = inspect.getsource(inspect.getmodule(type(rule)))  # type: ignore[arg-type]
        raised = set(re.findall(r'type(?:_)?(?:, [a-z]+)*\s*=\s*"([a-z_]+)"', source))
        raised |= set(re.findall(r'type_(?:, \w+)* = "([a-z_]+)"', source))
        assert raised, f"{rule.name}: no anomaly type found in its module"
        assert raised == {t.name for t in TYPES if t.rule == rule.name}, rule.name


def test_an_unknown_type_is_refused_by_the_model() -> None:
    try:
        Anomaly(
            type="made_up",
            severity="alarm",
            enterprise="E1",
            subject="x",
            started_at=T0,
            summary="",
            evidence={},
            rule="r",
            detected_at=T0,
        )
    except ValueError as exc:
        assert "made_up" in str(exc)
    else:
        raise AssertionError("an unknown type was accepted")


def test_families_derive_from_the_list() -> None:
    assert FAMILIES["over_limit"] == "abnormal_operation"
    assert FAMILIES["device_offline"] == "data_gaps"
    assert BY_NAME["data_gap"].hourly and not BY_NAME["device_offline"].hourly
