"""Which anomaly violates which alert or order: the evidence sources the rules write (built
here with the rules' own `Source.evidence` and `alert_source`) name the alert or order, and
the anomaly overlaps its window (strictly: one that ended as the window began does not)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.anomalies.model import Anomaly
from gateway.regime import Alert, Order
from gateway.registry import Registry, RegistryFile
from gateway.reports import compliance, period
from gateway.rules.obligation import Source, alert_source
from tests.reports.helpers import CST, anomaly

DAY = period.day(datetime(2026, 3, 10, tzinfo=CST).date())
AFTER = datetime(2026, 3, 12, tzinfo=CST)
T = DAY.start
REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "regions": [{"id": "C", "name": "市", "level": "city"}],
            "enterprises": [
                {
                    "id": "E1",
                    "name": "一厂",
                    "region": "C",
                    "lines": [{"id": "L1"}, {"id": "L3"}],
                    "gates": [{"id": "G1"}],
                }
            ],
        }
    )
)
ALERT = Alert(
    id="a1", level="orange", regions=["C"], starts_at=T + timedelta(hours=6), ends_at=DAY.end
)
ORDER = Order(
    id="o1",
    kind="shutdown",
    enterprise="E1",
    lines=["L1"],
    starts_at=T + timedelta(hours=8),
    ends_at=T + timedelta(hours=20),
)
CURTAIL = Order(
    id="o2",
    kind="curtailment",
    percent=30,
    enterprise="E1",
    lines=["L3"],
    starts_at=T + timedelta(hours=8),
    ends_at=T + timedelta(hours=20),
)


def order_source(order: Order) -> dict[str, object]:
    return Source("order", order.id, None, order.starts_at, order.ends_at, order.percent).evidence()


def judged(*anomalies: Anomaly, alerts: list[Alert] | None = None) -> dict[str, list[str]]:
    """ref -> the ids that violate it, for every obligation of E1 on DAY."""
    items = compliance.obligations(
        alerts if alerts is not None else [ALERT],
        [ORDER, CURTAIL],
        REGISTRY.data.enterprises,
        REGISTRY.regions.within,
        DAY,
        AFTER,
    )
    rows = compliance.judge(items, list(anomalies), {o: True for o in items})
    return {r.ref: r.anomalies for r in rows}


def production(line: str, sources: list[dict[str, Any]], start: datetime, end: datetime) -> Anomaly:
    shutdown = {"source": "x", "ref": "x", "sources": sources}
    return anomaly(
        "production_during_shutdown",
        "E1",
        start,
        subject=f"line:E1/{line}",
        ended_at=end,
        evidence={"line": line, "shutdown": shutdown},
    )


def truck(at: datetime, alert: Alert = ALERT) -> Anomaly:
    return anomaly(
        "banned_vehicle_entry",
        "E1",
        at,
        subject="gate:E1/G1/苏E12345",
        ended_at=at,
        evidence={"gate": "G1", "alert_id": alert.id, "source": alert_source(alert).evidence()},
    )


def test_l3_production_under_an_alert_does_not_violate_an_l1_order() -> None:
    l3 = production(
        "L3", [alert_source(ALERT).evidence()], T + timedelta(hours=9), T + timedelta(hours=12)
    )
    found = judged(l3)
    assert found == {"a1": [l3.id], "o1": [], "o2": []}
    l1 = production(
        "L1",
        [alert_source(ALERT).evidence(), order_source(ORDER)],
        T + timedelta(hours=9),
        T + timedelta(hours=12),
    )
    assert judged(l3, l1) == {"a1": sorted([l3.id, l1.id]), "o1": [l1.id], "o2": []}


def test_a_banned_truck_under_an_alert_does_not_violate_a_shutdown_order() -> None:
    entry = truck(T + timedelta(hours=10))  # inside the alert and the order
    assert judged(entry) == {"a1": [entry.id], "o1": [], "o2": []}


def test_a_curtailment_exceeded_violates_its_curtailment_order_only() -> None:
    over = anomaly(
        "curtailment_exceeded",
        "E1",
        T + timedelta(hours=9),
        subject="line:E1/L3",
        ended_at=T + timedelta(hours=11),
        evidence={"source": f"order {CURTAIL.id}", "sources": [order_source(CURTAIL)]},
    )
    assert judged(over) == {"a1": [], "o1": [], "o2": [over.id]}


def test_an_anomaly_that_closed_as_the_next_obligation_began_does_not_violate_it() -> None:
    # ran under the alert until exactly 08:00, when the order began (both named)
    both = [alert_source(ALERT).evidence(), order_source(ORDER)]
    before = production("L1", both, T + timedelta(hours=7), ORDER.starts_at)
    assert judged(before) == {"a1": [before.id], "o1": [], "o2": []}
    across = production("L1", both, T + timedelta(hours=7), ORDER.starts_at + timedelta(seconds=1))
    assert judged(across)["o1"] == [across.id]
    still_open = anomaly(
        "production_during_shutdown",
        "E1",
        T + timedelta(hours=19),
        subject="line:E1/L1",
        evidence={"shutdown": {"sources": both}},
    )
    assert judged(still_open)["o1"] == [still_open.id]
    after = production("L1", both, ORDER.ends_at, ORDER.ends_at + timedelta(hours=1))
    assert judged(after) == {"a1": [after.id], "o1": [], "o2": []}


def test_an_instant_counts_at_its_time_its_window_start_included() -> None:
    at_start = truck(ALERT.starts_at)
    before = truck(ALERT.starts_at - timedelta(microseconds=1))
    assert judged(at_start, before)["a1"] == [at_start.id]


def test_a_control_period_is_named_by_its_name() -> None:
    window = Alert(
        id="period:春节保障:0",
        level="red",
        regions=["C"],
        starts_at=T + timedelta(hours=6),
        ends_at=DAY.end,
    )
    entry = truck(T + timedelta(hours=7), window)
    assert entry.evidence["source"]["kind"] == "control period"
    ran = production(
        "L3", [alert_source(window).evidence()], T + timedelta(hours=7), T + timedelta(hours=8)
    )
    found = judged(entry, ran, alerts=[window, ALERT])
    assert found == {"period:春节保障:0": sorted([entry.id, ran.id]), "a1": [], "o1": [], "o2": []}


def test_an_anomaly_of_another_enterprise_or_without_sources_violates_nothing() -> None:
    other = anomaly(
        "production_during_shutdown",
        "E2",
        T + timedelta(hours=9),
        subject="line:E2/L1",
        ended_at=T + timedelta(hours=10),
        evidence={"shutdown": {"sources": [order_source(ORDER), alert_source(ALERT).evidence()]}},
    )
    bare = production("L1", [], T + timedelta(hours=9), T + timedelta(hours=10))
    assert judged(other, bare) == {"a1": [], "o1": [], "o2": []}
