"""Administrative regions in a hierarchy (province > city > county), as the registry declares
them, and whether a region lies within others. Pure.

An enterprise's `region` names one of them (usually a county); an account scoped to a city
sees the enterprises of every county under it. A registry without `regions` has no hierarchy:
a region then covers only enterprises that name it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["province", "city", "county", "district"]


class Region(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="e.g. the administrative division code 320505")
    name: str = Field("", description="e.g. 虎丘区")
    parent: str | None = Field(None, description="the region it belongs to; none for the root")
    level: Level | None = None


def check_regions(regions: Sequence[Region], used: Iterable[tuple[str, str]]) -> list[str]:
    """Problems of a hierarchy: ids twice, unknown parents, loops, and (when there is a
    hierarchy) a `used` (what, region) naming no region of it."""
    problems: list[str] = []
    parents: dict[str, str | None] = {}
    for region in regions:
        if region.id in parents:
            problems.append(f"region {region.id!r} appears twice")
        parents[region.id] = region.parent
    for rid, parent in parents.items():
        if parent is not None and parent not in parents:
            problems.append(f"region {rid!r}: parent {parent!r} is not a region")
    for rid in parents:
        seen = {rid}
        at = parents.get(rid)
        while at is not None and at in parents:
            if at in seen:
                problems.append(f"region {rid!r} is its own ancestor")
                break
            seen.add(at)
            at = parents[at]
    if parents:
        for what, region_id in used:
            if region_id and region_id not in parents:
                problems.append(f"{what}: region {region_id!r} is not declared in regions")
    return problems


class Hierarchy:
    """Ancestors of each region, for scope checks."""

    def __init__(self, regions: Sequence[Region]) -> None:
        self.regions = {r.id: r for r in regions}
        self._chains: dict[str, tuple[str, ...]] = {}

    def chain(self, region_id: str) -> tuple[str, ...]:
        """The region and its ancestors, nearest first (just the id when it is unknown)."""
        found = self._chains.get(region_id)
        if found is None:
            out = [region_id]
            at = self.regions[region_id].parent if region_id in self.regions else None
            while at is not None and at not in out:
                out.append(at)
                at = self.regions[at].parent if at in self.regions else None
            found = self._chains[region_id] = tuple(out)
        return found

    def within(self, region_id: str, scope: Iterable[str]) -> bool:
        """Whether `region_id` is one of `scope` or lies under one of them."""
        wanted = set(scope)
        return bool(region_id) and any(r in wanted for r in self.chain(region_id))

    def name(self, region_id: str) -> str:
        region = self.regions.get(region_id)
        return region.name if region is not None and region.name else region_id
