"""Withdrawn alerts and orders: kept on record, in force only before their withdrawal, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.regime import AlertSpec, AlreadyWithdrawn, Order, OrderSpec, Regime
from tests.api.conftest import CST

T = datetime(2025, 1, 10, 0, 0, tzinfo=CST)
H = timedelta(hours=1)


def order(kind: str = "shutdown", start: datetime = T, hours: int = 24, **kw: object) -> OrderSpec:
    return OrderSpec.model_validate(
        {"kind": kind, "enterprise": "E1", "starts_at": start, "ends_at": start + hours * H, **kw}
    )


def alert(level: str = "red", start: datetime = T, hours: int = 24) -> AlertSpec:
    return AlertSpec.model_validate(
        {"level": level, "regions": ["R1"], "starts_at": start, "ends_at": start + hours * H}
    )


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    r = Regime(tmp_path / "regime.sqlite")
    yield r
    r.close()


def test_a_withdrawn_shutdown_order_no_longer_counts(regime: Regime) -> None:
    stop = regime.add_order(order(lines=["L1"]), issued_by="chief")
    assert stop.issued_by == "chief"
    assert regime.in_force("E1", "R1", T + 3 * H).orders_for_line("L1", "shutdown") == [stop]
    withdrawn = regime.withdraw_order(stop.id, by="chief", at=T + 4 * H, reason="企业已整改")
    assert withdrawn is not None
    assert (withdrawn.withdrawn_at, withdrawn.withdrawn_by, withdrawn.withdraw_reason) == (
        T + 4 * H,
        "chief",
        "企业已整改",
    )
    assert regime.in_force("E1", "R1", T + 4 * H).orders_for_line("L1", "shutdown") == []
    assert regime.in_force("E1", "R1", T + 10 * H).orders == []
    # it was in force before its withdrawal, and says so for data of then
    assert regime.in_force("E1", "R1", T + 3 * H).orders == [withdrawn]
    # where what is in force changes: its start, and its withdrawal instead of its end
    assert regime.boundaries("E1", "R1", T + 48 * H) == [T + 4 * H, T]
    # on record, readable, listed (unless asked not to), not in force
    assert regime.get_order(stop.id) == withdrawn
    assert regime.list_orders() == [withdrawn]
    assert regime.list_orders(enterprise="E1") == [withdrawn]
    assert regime.list_orders(include_withdrawn=False) == []
    assert regime.list_orders(active_at=T + 5 * H) == []
    assert regime.list_orders(active_at=T + H) == [withdrawn]


def test_withdrawn_before_its_start_it_is_never_in_force(regime: Regime) -> None:
    later = regime.add_order(order(start=T + 10 * H))
    regime.withdraw_order(later.id, by="chief", at=T)
    assert regime.in_force("E1", "R1", T + 11 * H).orders == []
    assert regime.boundaries("E1", "R1", T + 48 * H) == []
    ended = regime.add_order(order(start=T - 48 * H, hours=1))  # over before it is withdrawn
    regime.withdraw_order(ended.id, by="chief", at=T)
    assert regime.in_force("E1", "R1", T - 47.5 * H).orders != []  # its window is unchanged
    assert regime.boundaries("E1", "R1", T) == [T - 47 * H, T - 48 * H]


def test_a_withdrawn_alert_lowers_the_level_from_then_on(regime: Regime) -> None:
    red = regime.add_alert(alert("red"), issued_by="chief")
    orange = regime.add_alert(alert("orange"))
    assert red.issued_by == "chief" and orange.issued_by == ""
    assert regime.in_force("E1", "R1", T + H).level == "red"
    regime.withdraw_alert(red.id, by="chief", at=T + 2 * H, reason="天气好转")
    assert regime.in_force("E1", "R1", T + H).level == "red"
    state = regime.in_force("E1", "R1", T + 2 * H)
    assert state.level == "orange" and [a.id for a in state.alerts] == [orange.id]
    assert [a.id for a in regime.list_alerts(active_at=T + 3 * H)] == [orange.id]
    assert [a.id for a in regime.list_alerts()] == [red.id, orange.id]
    assert [a.id for a in regime.list_alerts(include_withdrawn=False)] == [orange.id]
    assert regime.boundaries("E1", "R1", T + 48 * H) == [T + 24 * H, T + 2 * H, T]


def test_withdrawing_twice_is_refused_and_changes_nothing(regime: Regime) -> None:
    o = regime.add_order(order())
    first = regime.withdraw_order(o.id, by="chief", at=T + H, reason="first")
    with pytest.raises(AlreadyWithdrawn, match=r"was withdrawn at .* by chief"):
        regime.withdraw_order(o.id, by="other", at=T + 2 * H, reason="second")
    assert regime.get_order(o.id) == first
    a = regime.add_alert(alert())
    regime.withdraw_alert(a.id, by="chief", at=T + H)
    with pytest.raises(AlreadyWithdrawn):
        regime.withdraw_alert(a.id, by="chief", at=T + H)
    assert regime.withdraw_order("nope", by="chief", at=T) is None
    assert regime.withdraw_alert("nope", by="chief", at=T) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        regime.withdraw_order(o.id, by="chief", at=datetime(2025, 1, 10))


def test_withdrawals_persist_across_restarts(tmp_path: Path) -> None:
    first = Regime(tmp_path / "r.sqlite")
    o = first.add_order(order("curtailment", percent=30), issued_by="chief")
    a = first.add_alert(alert(), issued_by="chief")
    wo = first.withdraw_order(o.id, by="chief", at=T + H, reason="误发")
    wa = first.withdraw_alert(a.id, by="deputy", at=T + 2 * H)
    first.close()
    second = Regime(tmp_path / "r.sqlite")
    try:
        assert second.list_orders() == [wo]
        assert second.list_alerts() == [wa]
        assert wa is not None and wa.withdraw_reason is None and wa.withdrawn_by == "deputy"
        assert second.in_force("E1", "R1", T + 3 * H).orders == []
        assert second.in_force("E1", "R1", T + 3 * H).level is None
    finally:
        second.close()


def test_the_audit_hook_runs_in_the_transaction_and_its_failure_stores_nothing(
    tmp_path: Path,
) -> None:
    regime = Regime(tmp_path / "r.sqlite")
    seen: list[tuple[str, ...]] = []
    o = regime.add_order(order(), audit=lambda new: seen.append(("issue", new.id)))
    assert seen == [("issue", o.id)]

    def fail(*_records: Order) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        regime.add_order(order(), audit=fail)
    with pytest.raises(OSError):
        regime.withdraw_order(o.id, by="chief", at=T, audit=fail)
    with pytest.raises(OSError):
        regime.add_alert(alert(), audit=lambda _alert: fail())
    assert regime.list_orders() == [o] and regime.list_alerts() == []
    withdrawn = regime.withdraw_order(
        o.id, by="chief", at=T, audit=lambda before, after: seen.append((before.id, str(after)))
    )
    assert withdrawn is not None and seen[-1][0] == o.id
    regime.close()
    again = Regime(tmp_path / "r.sqlite")
    try:
        assert again.list_orders() == [withdrawn] and again.list_alerts() == []
    finally:
        again.close()
