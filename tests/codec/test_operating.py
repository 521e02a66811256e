"""HJ 212-2025 key production operating conditions (ST=45): state marks and process values in
`Rtd` are stored as `operating_condition` points, not refused as bad values; the same marks
under any other ST stay refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.codes import CodeGate
from adapters.hj212.convert import Source, TimeWindow, check_upload, normalize
from adapters.hj212.cp import parse_cp
from adapters.hj212.errors import ValueShapeError
from adapters.hj212.frame import parse_frame
from gateway.registry import Registry, RegistryFile

SOURCE = Source(enterprise="E1", outlet="O1", timezone=ZoneInfo("Asia/Shanghai"))
RECEIVED = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)
WINDOW = TimeWindow(timedelta(days=30), timedelta(minutes=10))
CP = (
    "DataTime=20260105080000;p99101-Rtd=St,p99101-Flag=N;p99102-Rtd=N;"
    "p99103-Rtd=Sr,p99103-Flag=N;p99201-Rtd=835.2,p99201-Flag=N"
)


def frame_of(cp: str, st_code: str = "45") -> bytes:
    fields: list[tuple[str, str | int]] = [
        ("QN", "20260105080000123"),
        ("ST", st_code),
        ("CN", "2011"),
        ("PW", "123456"),
        ("MN", "010000A8900016F000169DC0"),
        ("Flag", 9),
    ]
    return build_frame(build_segment(fields, cp)).removesuffix(b"\r\n")  # as the framer gives it


def test_state_marks_and_values_become_operating_condition_points() -> None:
    frame = parse_frame(frame_of(CP), lambda mn: None)
    cp = parse_cp(frame.cp, strict=True)
    moment = check_upload(cp, SOURCE, RECEIVED, WINDOW, st=frame.st or "", cn=frame.cn)
    assert moment == datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    points = normalize(frame, cp, SOURCE, RECEIVED, backfill=False).points
    assert {p.measurement for p in points} == {"operating_condition"}
    by_code = {p.tag("code"): p for p in points}
    assert by_code["p99101"].field("state") == "St" and by_code["p99101"].field("flag") == "N"
    assert by_code["p99102"].field("state") == "N" and by_code["p99102"].field("flag") is None
    assert by_code["p99201"].field("value") == 835.2 and by_code["p99201"].field("state") is None
    assert by_code["p99103"].tag("mn") == "010000A8900016F000169DC0"
    assert by_code["p99103"].tag("enterprise") == "E1" and by_code["p99103"].tag("outlet") == "O1"


@pytest.mark.parametrize("st_code", ["32", "22", "31", "44"])
def test_must_not_the_same_marks_under_another_st_are_still_refused(st_code: str) -> None:
    frame = parse_frame(frame_of(CP, st_code), lambda mn: None)
    cp = parse_cp(frame.cp, strict=True)
    with pytest.raises(ValueShapeError) as refused:
        check_upload(cp, SOURCE, RECEIVED, WINDOW, st=frame.st or "", cn=frame.cn)
    assert refused.value.reason == "bad_value"


@pytest.mark.parametrize("bad", ["St1", "Stopped", "", "1e5", "-", "S t"])
def test_an_operating_value_that_is_neither_a_number_nor_a_mark_is_refused(bad: str) -> None:
    cp = parse_cp(f"DataTime=20260105080000;p99101-Rtd={bad}", strict=False)
    with pytest.raises(ValueShapeError):
        check_upload(cp, SOURCE, RECEIVED, WINDOW, st="45", cn="2011")


@given(
    mark=st.text(alphabet=st.characters(min_codepoint=65, max_codepoint=90), min_size=1, max_size=4)
    | st.text(alphabet=st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=4),
    value=st.decimals(min_value=-99999, max_value=99999, places=3, allow_nan=False),
)
def test_any_mark_is_kept_as_sent_and_any_number_as_its_value(mark: str, value: object) -> None:
    number = f"{value:.3f}"
    cp_text = f"DataTime=20260105080000;p99101-Rtd={mark};p99202-Rtd={number}"
    frame = parse_frame(frame_of(cp_text), lambda mn: None)
    cp = parse_cp(frame.cp, strict=True)
    check_upload(cp, SOURCE, RECEIVED, WINDOW, st="45", cn="2011")
    points = {
        p.tag("code"): p for p in normalize(frame, cp, SOURCE, RECEIVED, backfill=False).points
    }
    assert points["p99101"].field("state") == mark
    assert points["p99202"].field("value") == float(number)


def test_marks_are_taken_in_real_time_operating_data_only() -> None:
    hourly = CP.replace("Rtd", "Avg")
    for cn in ("2061", "2051", "2031"):
        fields: list[tuple[str, str | int]] = [("ST", "45"), ("CN", cn), ("PW", "1"), ("MN", "M")]
        f = parse_frame(build_frame(build_segment(fields, hourly)).removesuffix(b"\r\n"))
        cp = parse_cp(f.cp, strict=True)
        with pytest.raises(ValueShapeError):
            check_upload(cp, SOURCE, RECEIVED, WINDOW, st="45", cn=cn)


def test_invented_operating_codes_make_no_series_beyond_the_device_s_bound() -> None:
    """A device sending 200 made-up operating codes: the first 32 of a standard shape become
    series, the rest one emission_unrecognised point."""
    registry = Registry(
        RegistryFile.model_validate(
            {
                "enterprises": [
                    {
                        "id": "E1",
                        "outlets": [
                            {"id": "O1", "mn": "010000A8900016F000169DC0", "password": "x"}
                        ],
                    }
                ]
            }
        )
    )
    device = registry.device("010000A8900016F000169DC0")
    assert device is not None
    items = ";".join(f"p{n:05d}-Rtd=St" for n in range(200))
    frame = parse_frame(frame_of(f"DataTime=20260105080000;{items}"), lambda mn: None)
    cp = parse_cp(frame.cp, strict=True)
    points = CodeGate().admit(device, normalize(frame, cp, SOURCE, RECEIVED, backfill=False).points)
    kept = [p for p in points if p.measurement == "operating_condition"]
    held = [p for p in points if p.measurement == "emission_unrecognised"]
    assert len(kept) == 32 and len(held) == 1 and held[0].field("count") == 168
