"""The plan in force for an enterprise under one plan key at one moment, and its schedules.

An enterprise's own plan for a key (`plans.<key>`, "一厂一策") governs; without one, the
registry's default for the grade in force then (`grades.<grade>.<key>`; a grade with no
default for the key, such as an exempt A, brings no measure). The grade in force is that of
its latest `grade_changes` entry at or before the moment, else its `grade`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.regime import PlanKey
from gateway.registry import Enterprise, Plan, Schedule
from gateway.schedules import edges_before

Origin = Literal["enterprise", "grade"]


def grade_at(ent: Enterprise, at: datetime) -> tuple[str, datetime | None]:
    """(grade in force at `at` ("" for none), since when: None for the registered `grade`)."""
    grade, since = ent.grade, None
    for change in sorted(ent.grade_changes, key=lambda c: c.since):
        if change.since <= at:
            grade, since = change.grade, change.since
    return grade, since


@dataclass(frozen=True, slots=True)
class PlanInForce:
    """A plan and where it comes from: the enterprise's own, or its grade's default."""

    plan: Plan
    origin: Origin
    key: PlanKey
    grade: str  # the grade in force ("" for none)
    grade_since: datetime | None  # from a dated grade change: a default applies from then

    def stops(self, line: str) -> bool:
        return self.plan.stop_all or line in self.plan.stop_lines

    def cut(self, line: str) -> float | None:
        """The percent it curtails `line` by, or None."""
        return self.plan.curtail.get(line, self.plan.curtail_all)

    def evidence(self) -> dict[str, object]:
        out: dict[str, object] = {"origin": self.origin, "level": self.key}
        if self.grade:
            out["grade"] = self.grade
        if self.plan.responsible:
            out["responsible"] = self.plan.responsible
        if self.plan.contact:
            out["contact"] = self.plan.contact
        return out


def plan_for(ent: Enterprise, key: PlanKey, at: datetime) -> PlanInForce | None:
    """The plan of `ent` under `key` at `at`: its own, else its grade's default, else None."""
    grade, since = grade_at(ent, at)
    own = ent.plans.get(key)
    if own is not None:
        return PlanInForce(own, "enterprise", key, grade, since)
    default = ent.grade_plans().get(grade, {}).get(key) if grade else None
    return None if default is None else PlanInForce(default, "grade", key, grade, since)


def covers(schedule: Schedule, line: str) -> bool:
    """Whether the schedule concerns `line` (an industry's or `all = true`: every line)."""
    return not schedule.lines or line in schedule.lines


def edges(ent: Enterprise, at: datetime) -> Iterator[datetime]:
    """Where its schedules and its grade change at or before `at`, latest first: where what
    obliges its lines may change beside the regime's own boundaries."""
    grades = sorted((c.since for c in ent.grade_changes if c.since <= at), reverse=True)
    return heapq.merge(grades, *(edges_before(s, at) for s in ent.all_schedules()), reverse=True)
