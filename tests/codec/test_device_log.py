"""2081 (power-on time) and 3020 (instrument logs, states, parameters) to `device_log` points,
from the golden frames; a log is stored whatever its age."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.convert import Source, device_log_points
from adapters.hj212.cp import parse_cp
from adapters.hj212.frame import parse_frame
from gateway.influx.lineproto import encode_point

from .vectors import frame

SOURCE = Source(enterprise="E1", outlet="O1", timezone=ZoneInfo("Asia/Shanghai"))
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def points_of(raw: bytes) -> list[str]:
    f = parse_frame(raw)
    return [encode_point(p) for p in device_log_points(f, parse_cp(f.cp), SOURCE, RECEIVED)]


def test_the_published_2081_gives_the_restart_time() -> None:
    (line,) = points_of(frame(12))
    assert line.startswith(
        "device_log,enterprise=E1,outlet=O1,mn=010000A8900016F000169DC0,cn=2081,code=RestartTime "
    )
    assert "value=" not in line
    assert 'text="20231007130452"' in line
    assert 'restart_at="2023-10-07T05:04:52+00:00"' in line  # 13:04:52 Beijing time
    assert line.endswith(
        f" {int(datetime(2023, 10, 8, 5, 4, 52, tzinfo=UTC).timestamp())}000000000"
    )


def test_a_3020_log_in_chinese_and_a_parameter_keep_their_text_and_value() -> None:
    cp = "DataTime=20100301145000;PolId=w01018;i11001-Info=//清洗管路//;i13004-Info=165.5"
    fields: list[tuple[str, str | int]] = [
        ("QN", "20160801085857223"),
        ("ST", "32"),
        ("CN", "3020"),
        ("PW", "123456"),
        ("MN", "010000A8900016F000169DC0"),
        ("Flag", 5),
    ]
    raw = build_frame(build_segment(fields, cp)).removesuffix(b"\r\n")
    lines = sorted(points_of(raw))
    assert len(lines) == 2
    assert "code=i11001" in lines[0] and "pol_id=w01018" in lines[0]
    assert 'text="清洗管路"' in lines[0] and "value=" not in lines[0]
    assert 'text="165.5"' in lines[1] and "value=165.5" in lines[1]
    # 2010: far outside the window a data upload must lie in, stored all the same
    assert lines[0].endswith(
        f" {int(datetime(2010, 3, 1, 6, 50, tzinfo=UTC).timestamp())}000000000"
    )


def test_a_log_without_a_readable_datatime_takes_the_receive_time() -> None:
    fields: list[tuple[str, str | int]] = [("ST", "32"), ("CN", "3020"), ("PW", "1"), ("MN", "M1")]
    raw = build_frame(build_segment(fields, "i12001-Info=2")).removesuffix(b"\r\n")
    (line,) = points_of(raw)
    assert "value=2" in line and line.endswith(f" {int(RECEIVED.timestamp())}000000000")
