"""What explains an anomaly: the queries, their window and how the series look."""

from __future__ import annotations

from datetime import UTC, timedelta

from gateway.anomalies.explain import MAX_WINDOW, Explainer, meter_look
from gateway.registry import Registry, RegistryFile
from tests.api.conftest import REGISTRY, T0, make_anomaly


def registry() -> Registry:
    return Registry(RegistryFile.model_validate(REGISTRY))


def test_window_around_an_hourly_type_and_capped_for_long_ones() -> None:
    hourly = Explainer(make_anomaly(ended_at=T0 + timedelta(hours=1)), registry(), 600)
    assert (hourly.start, hourly.end) == (
        (T0 - timedelta(hours=6)).astimezone(UTC),
        (T0 + timedelta(hours=3)).astimezone(UTC),
    )
    long = make_anomaly(type_="treatment_not_running", ended_at=T0 + timedelta(days=60))
    capped = Explainer(long, registry(), 600)
    assert capped.end - capped.start == MAX_WINDOW


def test_a_meter_offline_is_explained_by_its_power() -> None:
    anomaly = make_anomaly(type_="device_offline", subject="meter:E1/PM1")
    [wanted] = Explainer(anomaly, registry(), 100).wanted()
    [(query, describe)] = wanted.alternatives
    assert (query.measurement, query.field, query.max_points) == ("power", "p_kw", 100)
    assert dict(query.tags) == {"enterprise": "E1", "meter": "PM1"}
    look = describe("")
    assert look is not None and look.label == "PM1 (production, line L1) p_kw"
    assert look.limit_label == f"PM1 runs from {look.limit:g} kW"


def test_types_without_stored_values_have_nothing_to_chart() -> None:
    for type_ in ("banned_vehicle_entry", "auth_failure", "unregistered_device"):
        assert Explainer(make_anomaly(type_=type_), registry(), 600).wanted() == []


def test_an_unregistered_meter_keeps_its_id() -> None:
    assert meter_look(None, "X9", "ua").label == "meter X9 ua"
    assert meter_look(None, "X9", "ua").unit == "V"
