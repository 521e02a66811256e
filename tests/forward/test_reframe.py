"""Re-framing for an upstream platform (pure): what the device sent goes up, with only the
platform's version, password, key and reply bit changed; bytes unchanged when nothing differs."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.hj212.builder import (
    build_encrypted_frame,
    build_frame,
    build_segment,
    execution_answer,
    request_answer,
)
from adapters.hj212.cp import parse_cp
from adapters.hj212.crc import crc_variant
from adapters.hj212.frame import Frame, parse_frame
from adapters.hj212.framer import Framer
from gateway.forward.reframe import Upstream, answer, heartbeat, reframe, time_upload
from gateway.supervisor import hj212_codec

CODEC = hj212_codec()
mns = st.from_regex(r"[0-9A-Z]{14,24}", fullmatch=True)
passwords = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
keys = st.binary(min_size=16, max_size=16)
qns = st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)).map(
    lambda t: f"{t:%Y%m%d%H%M%S}{t.microsecond // 1000:03d}"
)
values = st.dictionaries(
    st.sampled_from(["w01018", "w21003", "a21026", "a34013", "a19001"]),
    st.decimals(min_value=0, max_value=99999, places=3, allow_nan=False).map(str),
    min_size=1,
)
cns = st.sampled_from(["2011", "2051", "2061", "2031"])
flags = st.sampled_from(["N", "F", "M", "D", "T"])


def cp_of(data_time: datetime, vals: dict[str, str], flag: str) -> str:
    items = [f"{code}-Avg={v},{code}-Flag={flag}" for code, v in vals.items()]
    return ";".join([f"DataTime={data_time:%Y%m%d%H%M%S}", *items])


@st.composite
def device_frames(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """A device's frame as it sent it, and its SM4 key (None: it does not encrypt)."""
    version = draw(st.sampled_from([1, 2]))
    key = draw(keys) if version == 2 and draw(st.booleans()) else None
    ask = draw(st.booleans())
    fields: list[tuple[str, str | int]] = [
        ("QN", draw(qns)),
        ("ST", draw(st.sampled_from(["31", "32", "39"]))),
        ("CN", draw(cns)),
        ("PW", draw(passwords)),
        ("MN", draw(mns)),
        ("Flag", version << 2 | int(ask)),
    ]
    when = draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1))).replace(microsecond=0)
    cp = cp_of(when, draw(values), draw(flags))
    if key is not None:  # as archived: from ## to the CRC, no CR LF
        return build_encrypted_frame(fields, cp, key)[:-2], key
    return build_frame(build_segment(fields, cp))[:-2], key


@st.composite
def upstreams(draw: st.DrawFn) -> Upstream:
    version = draw(st.sampled_from([1, 2]))
    key = draw(keys) if version == 2 and draw(st.booleans()) else None
    return Upstream(version, draw(st.none() | passwords), key, draw(st.booleans()))


def one_frame(data: bytes) -> bytes:
    """The frame the framer cuts from `data` (which must hold exactly one)."""
    frames = Framer().feed(data)
    assert len(frames) == 1
    return frames[0]


@settings(max_examples=300, deadline=None)
@given(device_frames(), upstreams(), st.booleans())
def test_what_goes_up_is_what_the_device_sent(
    sent: tuple[bytes, bytes | None], up: Upstream, backfill: bool
) -> None:
    raw, device_key = sent
    before = parse_frame(raw, lambda _mn: device_key)
    wire = reframe(CODEC, raw, device_key, up, backfill=backfill)
    assert wire.endswith(b"\r\n")
    after = parse_frame(one_frame(wire), lambda _mn: up.key)
    assert (after.qn, after.st, after.cn, after.mn) == (before.qn, before.st, before.cn, before.mn)
    assert parse_cp(after.cp).params == parse_cp(before.cp).params  # DataTime
    assert parse_cp(after.cp).items == parse_cp(before.cp).items  # values and flags
    assert after.pw == (up.password if up.password is not None else before.pw)
    assert after.version == up.version and after.wants_reply is up.ack
    assert after.encrypted is (up.version == 2 and up.key is not None and len(after.cp) >= 16)
    assert after.crc == "hj212" and after.length_ok
    assert after.rf == ("1" if backfill and up.version == 2 else before.rf)


@settings(max_examples=200, deadline=None)
@given(device_frames(), st.booleans())
def test_a_frame_the_platform_reads_as_it_is_goes_byte_for_byte(
    sent: tuple[bytes, bytes | None], same_password: bool
) -> None:
    raw, device_key = sent
    frame = parse_frame(raw, lambda _mn: device_key)
    up = Upstream(frame.version, frame.pw if same_password else None, device_key, frame.wants_reply)
    assert reframe(CODEC, raw, device_key, up) == raw + b"\r\n"


def test_a_modbus_crc_is_replaced_by_the_standard_one() -> None:
    fields: list[tuple[str, str | int]] = [("QN", "20260401000000000"), ("ST", "32")]
    fields += [("CN", "2051"), ("PW", "123456"), ("MN", "MN0001"), ("Flag", 5)]
    segment = build_segment(fields, "DataTime=20260401000000;w01018-Avg=1.0,w01018-Flag=N")
    raw = build_frame(segment, crc="modbus")[:-2]
    up = Upstream(1, None, None, True)
    wire = reframe(CODEC, raw, None, up)
    assert wire != raw + b"\r\n"
    body = one_frame(wire)
    assert crc_variant(body[6:-4], body[-4:].decode()) == "hj212"
    assert parse_frame(body).cp == parse_frame(raw).cp


def test_2005_frame_without_flag_gets_the_platform_version() -> None:
    fields: list[tuple[str, str | int]] = [("ST", "32"), ("CN", "2051"), ("PW", "1"), ("MN", "M1")]
    raw = build_frame(build_segment(fields, "DataTime=20260401000000;B01-Avg=2"))[:-2]
    after = parse_frame(one_frame(reframe(CODEC, raw, None, Upstream(1, "up", None, True))))
    assert (after.flag, after.pw, after.qn) == (5, "up", None)


def test_a_2005_loggers_codes_go_up_as_2017_codes() -> None:
    fields: list[tuple[str, str | int]] = [("ST", "31"), ("CN", "2061"), ("PW", "1"), ("MN", "M1")]
    cp = "DataTime=20260401000000;02-Avg=35.2,02-Flag=N;S01-Avg=9.1,S01-Flag=N;B02-Cou=120.0"
    raw = build_frame(build_segment(fields, cp))[:-2]
    up = Upstream(1, "up", None, True, from_2005=True)
    after = parse_frame(one_frame(reframe(CODEC, raw, None, up)))
    assert after.cp == (
        "DataTime=20260401000000;a21026-Avg=35.2,a21026-Flag=N;a19001-Avg=9.1,a19001-Flag=N;"
        "a00000-Cou=120.0"
    )
    assert (after.flag, after.pw, after.cn) == (5, "up", "2061")


def test_heartbeat_and_time_answer_frames() -> None:
    up = Upstream(2, "pw9", None, True)
    beat = parse_frame(one_frame(heartbeat(CODEC, "MN1", up, "20260401000000000")))
    assert (beat.cn, beat.mn, beat.pw, beat.version, beat.wants_reply) == (
        "9015",
        "MN1",
        "pw9",
        2,
        False,
    )
    request: Frame = parse_frame(
        build_frame(
            build_segment(
                [
                    ("QN", "20260401000000001"),
                    ("ST", "32"),
                    ("CN", "1011"),
                    ("PW", "pw9"),
                    ("MN", "MN1"),
                    ("Flag", 9),
                ],
                "",
            )
        )[:-2]
    )
    shown = parse_frame(time_upload(CODEC, request, datetime(2026, 4, 1, 8, 30, 5), up)[:-2])
    assert (shown.cn, shown.qn, shown.mn) == ("1011", "20260401000000001", "MN1")
    assert parse_cp(shown.cp).params["SystemTime"] == "20260401083005"
    # the logger's 9011 / 9012 are the ones the codec's device side builds
    assert answer(CODEC, request, "9011", "QnRtn=1") == request_answer(request)
    assert answer(CODEC, request, "9011", "QnRtn=3") == request_answer(request, qn_rtn=3)
    assert answer(CODEC, request, "9012", "ExeRtn=1") == execution_answer(request)
