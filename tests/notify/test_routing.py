"""Which channels a notice goes to: enterprise, region (with the hierarchy), type, severity,
event and level filters, and what must never be sent where."""

from __future__ import annotations

from datetime import timedelta

from gateway.anomalies.model import Anomaly
from gateway.cases.model import Case
from gateway.notify.notices import Notice, anomaly_notices, case_notice
from gateway.notify.routing import route
from gateway.registry import Registry
from tests.notify.conftest import T0, channel, event, offline, over_limit


def opened(anomaly: Anomaly, registry: Registry) -> Notice:
    (notice,) = anomaly_notices(event(anomaly), None, T0, registry)
    return notice


def names(notice: Notice, registry: Registry, *channels: object) -> list[str]:
    return [c.name for c in route(notice, channels, registry.regions)]  # type: ignore[arg-type]


def test_an_enterprise_channel_never_gets_another_enterprises_notice(registry: Registry) -> None:
    mine = channel(name="e1", enterprises=["E1"])
    for enterprise in ("E2", "E3", ""):
        assert names(opened(over_limit(enterprise), registry), registry, mine) == []
    assert names(opened(over_limit("E1"), registry), registry, mine) == ["e1"]


def test_a_region_covers_the_regions_under_it(registry: Registry) -> None:
    city = channel(name="suzhou", regions=["320500"])
    county = channel(name="huqiu", regions=["320505"])
    province = channel(name="jiangsu", regions=["320000"])
    every = channel(name="all")
    assert names(opened(over_limit("E1"), registry), registry, city, county, province, every) == [
        "suzhou",
        "huqiu",
        "jiangsu",
        "all",
    ]
    assert names(opened(over_limit("E2"), registry), registry, city, county, province, every) == [
        "suzhou",
        "jiangsu",
        "all",
    ]
    # Nanjing's enterprise is in neither Suzhou channel
    assert names(opened(over_limit("E3"), registry), registry, city, county) == []


def test_notices_of_no_enterprise_go_only_to_channels_without_scope(registry: Registry) -> None:
    nobody = opened(over_limit(""), registry)
    assert nobody.enterprise_name == "未关联企业"
    scoped = [channel(name="r", regions=["320000"]), channel(name="e", enterprises=["E1"])]
    assert names(nobody, registry, *scoped, channel(name="all")) == ["all"]


def test_type_and_severity_filters(registry: Registry) -> None:
    alarms = channel(name="alarms", severities=["alarm"])
    gaps = channel(name="gaps", types=["device_offline", "data_gap"])
    warning = opened(offline("E1"), registry)
    alarm = opened(over_limit("E1"), registry)
    assert names(warning, registry, alarms, gaps) == ["gaps"]
    assert names(alarm, registry, alarms, gaps) == ["alarms"]


def test_events_and_levels(registry: Registry) -> None:
    opened_only = channel(name="opened", events=["anomaly_opened"])
    first = channel(name="first")  # level 1, every event of its level
    second = channel(name="second", level=2)
    case = Case(7, "E1", T0.date(), ("a1",), T0, T0, deadline=T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=8)
    overdue = case_notice("case_overdue", case, now, [over_limit()], registry)
    unsigned = case_notice("case_unsigned", case, now, [over_limit()], registry, timedelta(hours=4))
    alarm = opened(over_limit("E1"), registry)
    assert names(alarm, registry, opened_only, first, second) == ["opened", "first"]
    assert names(overdue, registry, opened_only, first, second) == ["first"]
    assert names(unsigned, registry, opened_only, first, second) == ["second"]


def test_a_case_matches_a_type_filter_by_any_of_its_anomalies(registry: Registry) -> None:
    gaps = channel(name="gaps", types=["device_offline"])
    case = Case(8, "E1", T0.date(), ("a1", "a2"), T0, T0, deadline=T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=2)
    both = case_notice("case_overdue", case, now, [over_limit(), offline()], registry)
    only_limit = case_notice("case_overdue", case, now, [over_limit()], registry)
    assert both.types == ("over_limit", "device_offline") and both.severity == "alarm"
    assert names(both, registry, gaps) == ["gaps"]
    assert names(only_limit, registry, gaps) == []
