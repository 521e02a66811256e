"""The control regime: what is in force for an enterprise at an event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.regime import LEVEL_RANK, Alert, AlertSpec, OrderSpec, Regime
from tests.api.conftest import CST

T = datetime(2025, 1, 10, 0, 0, tzinfo=CST)
H = timedelta(hours=1)


def alert(level: str = "orange", start: datetime = T, hours: int = 24, **kw: object) -> AlertSpec:
    return AlertSpec.model_validate(
        {"level": level, "starts_at": start, "ends_at": start + hours * H, **kw}
    )


def order(kind: str = "shutdown", start: datetime = T, hours: int = 24, **kw: object) -> OrderSpec:
    return OrderSpec.model_validate(
        {"kind": kind, "enterprise": "E1", "starts_at": start, "ends_at": start + hours * H, **kw}
    )


@pytest.fixture
def regime(tmp_path: Path) -> Regime:
    return Regime(tmp_path / "regime.db")


def test_nothing_in_force(regime: Regime) -> None:
    state = regime.in_force("E1", "R1", T)
    assert (state.level, state.alerts, state.orders) == (None, [], [])


def test_alert_matches_by_region(regime: Regime) -> None:
    a = regime.add_alert(alert(regions=["R1", "R3"]))
    state = regime.in_force("E1", "R1", T + H)
    assert state.level == "orange"
    assert state.alerts == [a]
    assert regime.in_force("E2", "R2", T + H).level is None
    assert regime.in_force("E9", "", T + H).level is None  # no region never matches


def test_alert_matches_by_enterprise_list(regime: Regime) -> None:
    regime.add_alert(alert("red", enterprises=["E2"]))
    assert regime.in_force("E2", "R2", T).level == "red"
    assert regime.in_force("E1", "R2", T).level is None


def test_highest_level_wins(regime: Regime) -> None:
    yellow = regime.add_alert(alert("yellow", regions=["R1"]))
    red = regime.add_alert(alert("red", start=T + 2 * H, hours=2, enterprises=["E1"]))
    orange = regime.add_alert(alert("orange", regions=["R1"]))
    assert regime.in_force("E1", "R1", T + H).level == "orange"
    state = regime.in_force("E1", "R1", T + 3 * H)
    assert state.level == "red"
    assert state.alerts == [red, orange, yellow]
    assert regime.in_force("E1", "R1", T + 4 * H).level == "orange"  # red's window ended


def test_window_is_half_open_and_time_zone_independent(regime: Regime) -> None:
    regime.add_alert(alert(regions=["R1"], hours=1))
    assert regime.in_force("E1", "R1", T - timedelta(microseconds=1)).level is None
    assert regime.in_force("E1", "R1", T).level == "orange"
    assert regime.in_force("E1", "R1", T.astimezone(UTC)).level == "orange"  # same instant
    assert regime.in_force("E1", "R1", T + H - timedelta(microseconds=1)).level == "orange"
    assert regime.in_force("E1", "R1", T + H).level is None


def test_orders_by_line_with_their_start(regime: Regime) -> None:
    stop_l1 = regime.add_order(order(lines=["L1"], start=T + H))
    curtail_all = regime.add_order(order("curtailment", percent=30))
    regime.add_order(order(enterprise="E2"))
    regime.add_order(order(start=T + 48 * H))  # not yet
    state = regime.in_force("E1", "R1", T + 2 * H)
    assert state.orders == [curtail_all, stop_l1]  # earliest start first
    assert state.orders_for_line("L1") == [curtail_all, stop_l1]
    assert state.orders_for_line("L2") == [curtail_all]
    assert state.orders_for_line("L1", "shutdown") == [stop_l1]
    assert state.orders_for_line("L1", "shutdown")[0].starts_at == T + H  # grace counts from here
    assert regime.in_force("E1", "R1", T).orders == [curtail_all]


def test_percent_rules() -> None:
    assert order("shutdown", percent=50).percent is None  # ignored for shutdown
    assert order("shutdown", percent=-3).percent is None
    assert order("curtailment", percent=100).percent == 100
    for bad in (0, -1, 100.5):
        with pytest.raises(ValueError, match="percent"):
            order("curtailment", percent=bad)
    with pytest.raises(ValueError, match="needs percent"):
        order("curtailment")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "at least one region or one enterprise"),
        ({"regions": [], "enterprises": []}, "at least one region or one enterprise"),
        ({"regions": [""]}, "at least 1 character"),
        ({"regions": ["R1"], "hours": 0}, "must be after starts_at"),
        ({"regions": ["R1"], "hours": -1}, "must be after starts_at"),
        ({"regions": ["R1"], "level": "purple"}, "'yellow', 'orange' or 'red'"),
        ({"regions": ["R1"], "start": datetime(2025, 1, 1)}, "timezone"),
    ],
)
def test_invalid_alerts_are_refused_with_a_reason(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alert(**spec)  # type: ignore[arg-type]


def test_naive_query_time_is_refused(regime: Regime) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        regime.in_force("E1", "R1", datetime(2025, 1, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        regime.list_alerts(active_at=datetime(2025, 1, 10))


def test_list_and_delete(regime: Regime) -> None:
    early = regime.add_alert(alert("yellow", regions=["R1"], hours=1))
    late = regime.add_alert(alert("red", start=T + 5 * H, regions=["R1"]))
    assert regime.list_alerts() == [late, early]  # highest level first
    assert regime.list_alerts(active_at=T) == [early]
    assert regime.delete_alert(early.id) is True
    assert regime.delete_alert(early.id) is False
    assert regime.get_alert(early.id) is None
    o = regime.add_order(order())
    assert regime.list_orders(enterprise="E2") == []
    assert regime.list_orders(active_at=T, enterprise="E1") == [o]
    assert regime.delete_order(o.id) and not regime.delete_order(o.id)


def test_persisted_across_restarts(tmp_path: Path) -> None:
    first = Regime(tmp_path / "r.db")
    kept = first.add_alert(alert(regions=["R1"], note="重污染天气橙色预警"))
    dropped = first.add_alert(alert("red", regions=["R1"]))
    o = first.add_order(order("curtailment", percent=20, lines=["L2"], issued_by="bureau"))
    first.delete_alert(dropped.id)
    first.close()
    second = Regime(tmp_path / "r.db")
    assert second.list_alerts() == [kept]
    assert second.list_orders() == [o]
    assert second.in_force("E1", "R1", T).model_dump() == {
        "enterprise": "E1",
        "region": "R1",
        "at": T,
        "level": "orange",
        "layers": [],
        "alerts": [kept.model_dump()],
        "orders": [o.model_dump()],
    }


windows = st.tuples(
    st.sampled_from(["yellow", "orange", "red"]),
    st.integers(-5, 5),  # start, hours from T
    st.integers(1, 5),  # length, hours
    st.sampled_from([{"regions": ["R1"]}, {"regions": ["R2"]}, {"enterprises": ["E1"]}]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(windows, max_size=6), st.integers(-6 * 60, 10 * 60))
def test_level_is_the_highest_covering_alert(
    specs: list[tuple[str, int, int, dict[str, list[str]]]], minute: int
) -> None:
    regime = Regime(":memory:")
    at = T + timedelta(minutes=minute)
    expected = 0
    for level, start, hours, who in specs:
        regime.add_alert(alert(level, start=T + start * H, hours=hours, **who))
        if T + start * H <= at < T + (start + hours) * H and "R2" not in who.get("regions", []):
            expected = max(expected, LEVEL_RANK[level])
    state = regime.in_force("E1", "R1", at)
    assert (LEVEL_RANK[state.level] if state.level else 0) == expected
    assert [LEVEL_RANK[a.level] for a in state.alerts] == sorted(
        (LEVEL_RANK[a.level] for a in state.alerts), reverse=True
    )


def test_in_force_answers_anew_after_every_change(tmp_path: Path) -> None:
    """Rules ask `in_force` of one reading several times and get a kept answer; it must never
    outlive a change: a new order, a withdrawal, another calendar, another hierarchy."""
    regime = Regime(tmp_path / "r.db")
    at = T + timedelta(hours=1)
    assert regime.in_force("E1", "R1", at).orders == []
    added = regime.add_order(order("shutdown", enterprise="E1"))
    assert [o.id for o in regime.in_force("E1", "R1", at).orders] == [added.id]
    regime.withdraw_order(added.id, by="chief", at=T)
    assert regime.in_force("E1", "R1", at).orders == []
    assert regime.in_force("E1", "R1", at).level is None
    calendar = [Alert.model_validate(alert("red", regions=["R1"]).model_dump() | {"id": "p:0"})]
    regime.calendar = lambda: calendar
    assert regime.in_force("E1", "R1", at).level == "red"
    assert regime.in_force("E1", "R2", at).level is None
    regime.within = lambda region, scope: region == "R2" and "R1" in scope  # R2 lies in R1
    assert regime.in_force("E1", "R2", at).level == "red"
    regime.close()
