"""A bounded, seeded fuzz run in CI (`pollution-gateway fuzz` runs the long one): hostile
frames beside good devices, against a real gateway process and a real InfluxDB."""

from __future__ import annotations

from pathlib import Path

from devkit.fuzz import fuzz


def test_hostile_frames_cost_the_good_devices_nothing(tmp_path: Path) -> None:
    report = fuzz(tmp_path / "fuzz", frames=4000, seed=20261201)
    assert report.problems() == [], report
    assert report.frames_hostile == 4000 and report.good_acked == report.frames_good == 400
    assert report.corrupted_stored <= 5, report  # line noise the checks could not tell apart
    assert report.good_points_stored == report.good_points_expected == 2400
    # 20 good devices x 6 codes, their invented and refused codes held to a bound, anomalies
    assert report.series < 20 * 6 + 20 * (32 * 4 + 5) + 100, report.series
    assert report.refused_anomalies <= 25, report.refused_anomalies
    assert report.rss_mb_end - report.rss_mb_start < 100, report
