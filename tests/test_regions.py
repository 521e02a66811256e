"""The region hierarchy of the registry: what lies within what, and what a registry may not
declare."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.regions import Hierarchy, Region, check_regions
from gateway.registry import RegistryFile

TREE = [
    Region(id="P", name="省"),
    Region(id="C1", name="市一", parent="P"),
    Region(id="K1", name="县一", parent="C1"),
    Region(id="C2", name="市二", parent="P"),
]


def test_a_county_lies_within_its_city_and_province_not_another_city() -> None:
    tree = Hierarchy(TREE)
    assert tree.chain("K1") == ("K1", "C1", "P")
    assert tree.within("K1", ["C1"]) and tree.within("K1", ["P"]) and tree.within("K1", ["K1"])
    assert not tree.within("K1", ["C2"])
    assert not tree.within("C1", ["K1"])  # a city is not within its county
    assert not tree.within("", ["P"])  # no region: within nothing
    assert tree.name("K1") == "县一" and tree.name("X") == "X"


def test_without_a_hierarchy_a_region_covers_only_itself() -> None:
    tree = Hierarchy([])
    assert tree.within("R1", ["R1"]) and not tree.within("R1", ["R2"])


def test_problems_of_a_hierarchy_are_all_named() -> None:
    loop = [Region(id="A", parent="B"), Region(id="B", parent="A"), Region(id="D"), Region(id="D")]
    problems = check_regions([*loop, Region(id="C", parent="Z")], [("enterprise E9", "Q")])
    assert any("appears twice" in p for p in problems)
    assert any("'Z' is not a region" in p for p in problems)
    assert any("own ancestor" in p for p in problems)
    assert any("enterprise E9: region 'Q'" in p for p in problems)
    assert check_regions(TREE, [("enterprise E1", "K1"), ("enterprise E2", "")]) == []


def test_a_registry_refuses_an_enterprise_in_an_undeclared_region() -> None:
    with pytest.raises(ValidationError, match="not declared in regions"):
        RegistryFile.model_validate(
            {"regions": [{"id": "P"}], "enterprises": [{"id": "E1", "region": "K9"}]}
        )
    # a registry without regions keeps free region names, as before
    RegistryFile.model_validate({"enterprises": [{"id": "E1", "region": "K9"}]})
