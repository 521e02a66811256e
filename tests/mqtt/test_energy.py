"""Interval energy from cumulative kWh: every classification, the bound, and properties
(deltas never negative; across rollovers they sum to the counter's total increase)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.ingest.energy import EnergyDelta, EnergyHistory, EnergyTracker
from gateway.ingest.power import PowerConverter, PowerSample, with_energy
from gateway.registry import Registry, RegistryFile

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MIN15 = timedelta(minutes=15)


def _at(n: int) -> datetime:
    return T0 + n * MIN15


def test_first_reading_has_no_delta() -> None:
    delta = EnergyTracker().interval_energy("m1", T0, 1000.0)
    assert (delta.kind, delta.kwh, delta.raw_kwh, delta.previous_kwh) == ("first", None, None, None)
    assert not delta.flagged


def test_normal_delta_is_scaled_by_ct_and_pt() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 1000.0)
    delta = tracker.interval_energy("m1", _at(1), 1002.5, ct_ratio=40.0, pt_ratio=100.0)
    assert (delta.kind, delta.raw_kwh, delta.kwh) == ("normal", 2.5, 10_000.0)
    assert (delta.previous_time, delta.previous_kwh) == (_at(0), 1000.0)
    assert not delta.flagged


def test_meters_are_independent() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 1000.0)
    assert tracker.interval_energy("m2", _at(1), 5.0).kind == "first"
    assert tracker.interval_energy("m1", _at(1), 1001.0).raw_kwh == 1.0


def test_rollover() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 99_990.0, rollover_at=100_000.0)
    delta = tracker.interval_energy("m1", _at(1), 15.0, ct_ratio=2.0, rollover_at=100_000.0)
    assert (delta.kind, delta.raw_kwh, delta.kwh, delta.flagged) == ("rollover", 25.0, 50.0, True)
    after = tracker.interval_energy("m1", _at(2), 20.0, rollover_at=100_000.0)
    assert (after.kind, after.raw_kwh) == ("normal", 5.0)


def test_a_wrap_larger_than_10_percent_is_not_a_rollover() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 60_000.0, rollover_at=100_000.0)
    delta = tracker.interval_energy("m1", _at(1), 50.0, rollover_at=100_000.0)
    assert (delta.kind, delta.raw_kwh) == ("reset", 50.0)  # a 40,050 kWh "wrap" is implausible
    tracker.interval_energy("m2", _at(0), 60_000.0, rollover_at=100_000.0)
    assert tracker.interval_energy("m2", _at(1), 5_000.0, rollover_at=100_000.0).kind == "negative"


def test_reset_to_near_zero_counts_the_new_value() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 250_000.0)
    delta = tracker.interval_energy("m1", _at(1), 120.0, ct_ratio=10.0)
    assert (delta.kind, delta.raw_kwh, delta.kwh, delta.flagged) == ("reset", 120.0, 1200.0, True)
    assert tracker.interval_energy("m1", _at(2), 130.0).raw_kwh == 10.0


@pytest.mark.parametrize(
    ("previous", "new", "kind"),
    [
        (250_000.0, 2_500.0, "reset"),  # exactly 1 % of the previous reading
        (250_000.0, 2_500.5, "negative"),
        (500.0, 10.0, "reset"),  # the 10 kWh floor
        (500.0, 10.5, "negative"),
    ],
)
def test_reset_threshold(previous: float, new: float, kind: str) -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), previous)
    assert tracker.interval_energy("m1", _at(1), new).kind == kind


def test_negative_keeps_the_baseline() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 10_000.0)
    glitch = tracker.interval_energy("m1", _at(1), 9_000.0)
    assert (glitch.kind, glitch.kwh, glitch.raw_kwh, glitch.rebased) == (
        "negative", None, None, False,
    )  # fmt: skip
    assert glitch.flagged
    recovered = tracker.interval_energy("m1", _at(2), 10_004.0)
    assert (recovered.kind, recovered.raw_kwh, recovered.previous_kwh) == ("normal", 4.0, 10_000.0)


def test_three_consecutive_negatives_rebase() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 10_000.0)
    kinds = [tracker.interval_energy("m1", _at(i), 500.0 + i) for i in (1, 2, 3)]
    assert [(d.kind, d.rebased) for d in kinds] == [
        ("negative", False), ("negative", False), ("negative", True),
    ]  # fmt: skip
    after = tracker.interval_energy("m1", _at(4), 510.0)
    assert (after.kind, after.raw_kwh, after.previous_kwh) == ("normal", 7.0, 503.0)


def test_a_good_reading_clears_the_negative_count() -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(0), 10_000.0)
    tracker.interval_energy("m1", _at(1), 500.0)
    tracker.interval_energy("m1", _at(2), 500.0)
    tracker.interval_energy("m1", _at(3), 10_001.0)
    assert tracker.interval_energy("m1", _at(4), 500.0).rebased is False


@pytest.mark.parametrize("when", [_at(0), _at(1) - timedelta(seconds=1), _at(1)])
def test_out_of_order_and_duplicates_have_no_delta_and_change_nothing(when: datetime) -> None:
    tracker = EnergyTracker()
    tracker.interval_energy("m1", _at(1), 1000.0)
    late = tracker.interval_energy("m1", when, 900.0)
    assert (late.kind, late.kwh, late.flagged) == ("out_of_order", None, False)
    assert tracker.interval_energy("m1", _at(2), 1001.0).raw_kwh == 1.0


def test_bounded_least_recently_read_meter_is_forgotten() -> None:
    tracker = EnergyTracker(max_meters=2)
    tracker.interval_energy("a", _at(0), 1.0)
    tracker.interval_energy("b", _at(0), 1.0)
    tracker.interval_energy("a", _at(1), 2.0)  # a is now the most recent
    tracker.interval_energy("c", _at(0), 1.0)  # evicts b
    assert len(tracker) == 2
    assert tracker.interval_energy("a", _at(2), 3.0).kind == "normal"
    assert tracker.interval_energy("b", _at(1), 5.0).kind == "first"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kwh": -1.0},
        {"kwh": math.nan},
        {"kwh": math.inf},
        {"ct_ratio": 0.0},
        {"pt_ratio": -1.0},
        {"ct_ratio": math.nan},
        {"rollover_at": 0.0},
        {"rollover_at": math.inf},
        {"event_time": datetime(2026, 1, 5)},  # naive
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"meter": "m1", "event_time": T0, "kwh": 1.0, **kwargs}
    with pytest.raises(ValueError):
        EnergyTracker().interval_energy(**arguments)  # type: ignore[arg-type]


def test_max_meters_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EnergyTracker(max_meters=0)


# ------------------------------------------------------------------------------- properties

readings = st.lists(
    st.tuples(
        st.integers(min_value=-3, max_value=5),  # time step in intervals, may go back
        st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
    ),
    max_size=40,
)


@given(
    readings,
    st.none() | st.floats(min_value=1.0, max_value=1e9),
    st.floats(min_value=0.01, max_value=1000.0),
)
def test_deltas_are_never_negative(
    steps: list[tuple[int, float]], rollover_at: float | None, ct: float
) -> None:
    tracker = EnergyTracker()
    when = T0
    for step, kwh in steps:
        when += step * MIN15
        delta = tracker.interval_energy("m", when, kwh, ct_ratio=ct, rollover_at=rollover_at)
        has_delta = delta.kind in ("normal", "rollover", "reset")
        assert (delta.kwh is not None) == has_delta == (delta.raw_kwh is not None)
        if delta.kwh is not None and delta.raw_kwh is not None:
            assert delta.raw_kwh >= 0 and delta.kwh >= 0
            assert delta.kwh == pytest.approx(delta.raw_kwh * ct)


@given(
    st.sampled_from([1e4, 1e5, 99_999.99, 1e8, 1e10]),
    st.floats(min_value=0.0, max_value=0.999),
    st.lists(st.floats(min_value=0.0, max_value=0.09), min_size=1, max_size=60),
    st.floats(min_value=1.0, max_value=200.0),
)
@example(99_999.99, 0.95, [0.09] * 30, 40.0)  # three wraps
def test_deltas_sum_to_the_total_increase_across_rollovers(
    rollover_at: float, start_fraction: float, increments: list[float], ct: float
) -> None:
    tracker = EnergyTracker()
    counter = start_fraction * rollover_at
    tracker.interval_energy("m", T0, counter, ct_ratio=ct, rollover_at=rollover_at)
    total_raw = total_primary = 0.0
    for i, fraction in enumerate(increments, start=1):
        counter = (counter + fraction * rollover_at) % rollover_at
        delta = tracker.interval_energy("m", _at(i), counter, ct_ratio=ct, rollover_at=rollover_at)
        assert delta.kind in ("normal", "rollover")
        assert delta.raw_kwh is not None and delta.kwh is not None
        total_raw += delta.raw_kwh
        total_primary += delta.kwh
    increase = sum(increments) * rollover_at
    assert total_raw == pytest.approx(increase, rel=1e-9, abs=1e-6 * rollover_at)
    assert total_primary == pytest.approx(increase * ct, rel=1e-9, abs=1e-6 * rollover_at * ct)


readings_ = st.lists(
    st.tuples(
        st.integers(0, 40),  # quarter hours from T0, any order, repeats
        st.floats(0, 2_000, allow_nan=False),
        st.one_of(st.none(), st.floats(0, 500, allow_nan=False)),
    ),
    max_size=30,
)


@given(readings_)
def test_energy_added_downstream_is_the_energy_derived_at_ingestion(
    sent: list[tuple[int, float, float | None]],
) -> None:
    """A converter without energy, then `with_energy` over its points in the same order,
    stores what one converter with energy stores (ratios and a rollover counter included)."""
    meter = {"id": "PM1", "role": "production", "ct_ratio": 40.0, "pt_ratio": 100.0}
    data = {"enterprises": [{"id": "E1", "meters": [meter | {"rollover_at": 9_999.0}]}]}
    registry = Registry(RegistryFile.model_validate(data))
    whole = PowerConverter(registry)
    split = PowerConverter(registry, derive_energy=False)
    downstream = EnergyHistory()
    for n, kwh, p_kw in sorted(sent, key=lambda r: r[0]):  # in time order: nothing to redo
        sample = PowerSample(_at(n), kwh=kwh, p_kw=p_kw)
        want = whole.point("E1", "PM1", sample)
        stored = split.point("E1", "PM1", sample)
        assert stored.field("energy_kwh") is None
        (full,), patches = with_energy(stored, downstream, registry)
        assert len(patches) <= 1  # the reading's own, nothing later to redo
        patch = patches[0] if patches else None
        merged = dict(stored.fields) | (dict(patch.fields) if patch is not None else {})
        assert full.fields == tuple(merged.items())
        assert merged.keys() == dict(want.fields).keys()
        for name, value in want.fields:
            got = merged[name]
            assert got == value or math.isclose(float(got), float(value), rel_tol=1e-9), name
        if patch is not None:
            assert (patch.tags, patch.event_time_ns) == (want.tags, want.event_time_ns)


def test_with_energy_leaves_other_points_alone() -> None:
    registry = Registry(RegistryFile.model_validate({"enterprises": []}))
    point = PowerConverter(registry, derive_energy=False).point("E1", "M1", PowerSample(T0))
    emission = point._replace(measurement="emission")
    assert with_energy(point, EnergyHistory(), registry) == ([point], [])  # no kwh
    assert with_energy(emission, EnergyHistory(), registry) == ([emission], [])


def _in_time_order(
    readings: list[tuple[int, float]], rollover_at: float | None
) -> dict[int, EnergyDelta]:
    tracker = EnergyTracker()
    return {
        n: tracker.interval_energy("m", _at(n), kwh, ct_ratio=2.0, rollover_at=rollover_at)
        for n, kwh in sorted(readings)
    }


counters = st.dictionaries(
    st.integers(0, 60), st.floats(0, 1_000, allow_nan=False), min_size=1, max_size=25
)


@given(counters, st.randoms(use_true_random=False), st.sampled_from([None, 1_000.0]))
def test_history_in_any_order_ends_as_the_tracker_in_time_order(
    by_time: dict[int, float], shuffle: random.Random, rollover_at: float | None
) -> None:
    """Within the kept readings, the last delta given for each reading is the one the tracker
    gives taking them in time order (resets, rollovers and rebased negatives included)."""
    readings = list(by_time.items())
    shuffle.shuffle(readings)
    history = EnergyHistory(keep=len(readings))
    final: dict[int, EnergyDelta] = {}
    for n, kwh in readings:
        given = history.take("m", _at(n), kwh, ct_ratio=2.0, rollover_at=rollover_at)
        assert given[0][0] == _at(n) and given[0][2] is None  # the reading's own first
        for when, delta, before in given[1:]:  # then later ones only, that changed
            assert when > _at(n) and before == final[int((when - T0) / MIN15)] != delta
        for when, delta, _ in given:
            final[int((when - T0) / MIN15)] = delta
    assert final == _in_time_order(readings, rollover_at)


def test_history_splits_an_interval_and_keeps_only_its_window() -> None:
    history = EnergyHistory(keep=2)
    history.take("m", _at(0), 100.0)
    assert history.take("m", _at(2), 130.0)[0][1].kwh == 30.0
    late, later = history.take("m", _at(1), 110.0)  # between them: both intervals again
    assert (late[0], late[1].kwh, later[0], later[1].kwh) == (_at(1), 10.0, _at(2), 20.0)
    assert later[2] is not None and later[2].kwh == 30.0  # what it had before
    # two kept (00:15 and 00:30): one before them is out of order; one at 00:30 comes after it
    assert history.take("m", _at(0), 100.0)[0][1].kind == "out_of_order"
    assert history.take("m", _at(2), 130.0)[0][1].kind == "out_of_order"
    assert len(history) == 1


def test_the_rules_get_what_a_late_reading_changes_of_a_later_one() -> None:
    """Judged of a reading that splits a later one's interval: its own energy, then the
    change of the later one's (so hourly sums are those of the readings in time order);
    stored: both readings' energy, to be merged into them."""
    registry = Registry(RegistryFile.model_validate({"enterprises": []}))
    split = PowerConverter(registry, derive_energy=False)
    history = EnergyHistory()
    for n, kwh in ((0, 100.0), (2, 130.0)):
        with_energy(split.point("E1", "M1", PowerSample(_at(n), kwh=kwh)), history, registry)
    late = split.point("E1", "M1", PowerSample(_at(1), kwh=110.0))
    judged, stored = with_energy(late, history, registry)
    assert [(p.event_time_ns, p.field("energy_kwh")) for p in judged] == [
        (late.event_time_ns, 10.0),
        (late.event_time_ns + MIN15 // timedelta(microseconds=1) * 1000, -10.0),
    ]
    assert judged[1].fields == (("energy_kwh", -10.0),)  # nothing else to judge again
    assert [p.field("energy_kwh") for p in stored] == [10.0, 20.0]
    assert stored[1].field("running") is None  # its own verdict stays
