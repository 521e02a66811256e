"""Golden folders, Telegraf style: ``tests/golden/hj212/<case>/``, one test walks them all.

``input.txt`` is a real frame exactly as published (no CR LF trailer); ``segment.txt`` is an
HJ 212-2017 Appendix C data segment that the test frames itself with `build_frame` (and, for the
3020 log text, also GBK-encoded as old devices send it). ``expected.json`` holds the header, the
CRC facts and verdicts, the CP data and, for data uploads, the exact line protocol that
`normalize` produces for enterprise E1 / outlet O1 in Beijing time.

The expected files were generated once and then checked by hand against the standard; the times
are also re-derived here independently (`test_event_times_follow_beijing_datatime`).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.hj212.builder import build_frame
from adapters.hj212.convert import DATA_COMMANDS, Source, normalize
from adapters.hj212.cp import parse_cp
from adapters.hj212.crc import accepts
from adapters.hj212.frame import Frame, parse_frame
from gateway.influx.lineproto import encode_point

from .vectors import (
    KEY,
    expected,
    frame,
    frame_cases,
    ref_crc_hj212,
    ref_crc_modbus,
    segment_cases,
)

SOURCE = Source(enterprise="E1", outlet="O1", timezone=ZoneInfo("Asia/Shanghai"))
RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
FRAMES = frame_cases()
SEGMENTS = segment_cases()


def _key_for(mn: str) -> bytes:
    return KEY


def describe(raw: bytes) -> tuple[Frame, dict[str, Any]]:
    """What the codec makes of a raw frame, in the shape of ``expected.json``."""
    f = parse_frame(raw, key_for=_key_for)
    cp = parse_cp(f.cp)
    out: dict[str, Any] = {
        "header": {
            "cn": f.cn,
            "mn": f.mn,
            "qn": f.qn,
            "st": f.st,
            "pw": f.pw,
            "flag": f.flag,
            "version": f.version,
            "pnum": f.pnum,
            "pno": f.pno,
            "rf": f.rf,
            "encrypted": f.encrypted,
        },
        "encoding": f.encoding,
        "crc_sent": f.crc_sent,
        "crc_variant": f.crc,
        "declared_length": f.declared_length,
        "segment_length": f.segment_length,
        "length_matches": f.length_matches,
        "strict_accepts": accepts("strict", f.crc),
        "tolerant_accepts": accepts("tolerant", f.crc),
        "cp": {"params": cp.params, "items": cp.items},
    }
    if f.cn in DATA_COMMANDS:
        result = normalize(f, cp, SOURCE, RECEIVED_AT, backfill=False)
        out["lines"] = [encode_point(p) for p in result.points]
        out["skipped_values"] = result.skipped_values
    return f, out


def _compare(actual: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if key in ("vector", "framings"):
            continue
        assert actual.get(key) == value, key
    extra = set(actual) - set(want)
    assert not extra, f"expected.json lacks {sorted(extra)}"


def test_golden_folders_are_all_there() -> None:
    # 23 published frames + 6 Appendix C segments; a lost folder must not pass silently
    assert len(FRAMES) == 23
    assert len(SEGMENTS) == 6
    for folder in [*FRAMES.values(), *SEGMENTS.values()]:
        assert (folder / "expected.json").is_file(), folder.name


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_frame_golden(name: str) -> None:
    folder = FRAMES[name]
    raw = (folder / "input.txt").read_bytes()
    want = expected(folder)
    _, actual = describe(raw)
    _compare(actual, want)


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_frame_agrees_with_published_vector_facts(name: str) -> None:
    """The parser's CRC and length facts agree with what the vectors README states."""
    folder = FRAMES[name]
    want = expected(folder)["vector"]
    f, _ = describe((folder / "input.txt").read_bytes())
    published = want["crc_variant"]
    assert published.split(" ")[0] == f.crc
    if want["length_field_matches"] is not None:
        assert want["length_field_matches"] == f.length_matches


CLEAR_FRAMES = sorted(n for n, p in FRAMES.items() if not expected(p)["header"]["encrypted"])


@pytest.mark.parametrize("name", CLEAR_FRAMES)
def test_crc_verdict_matches_bitwise_reference(name: str) -> None:
    """For clear-text frames, recompute both CRCs bit by bit as the standard describes them.

    (The CRC of an encrypted frame covers the plaintext: see the A.2 pair test below.)
    """
    raw = (FRAMES[name] / "input.txt").read_bytes()
    f, _ = describe(raw)
    assert not f.encrypted
    segment, sent = raw[6:-4], int(raw[-4:], 16)
    hj212, modbus = ref_crc_hj212(segment), ref_crc_modbus(segment)
    swapped = (modbus & 0xFF) << 8 | modbus >> 8
    expected_variant = (
        "hj212"
        if sent == hj212
        else "modbus"
        if sent == modbus
        else "modbus_swapped"
        if sent == swapped
        else "none"
    )
    assert f.crc == expected_variant
    if f.crc == "hj212":
        assert hj212 & 0xFF in (0x00, 0x01, 0x40, 0x41, 0x80, 0x81, 0xC0, 0xC1)


@pytest.mark.parametrize(("cipher", "plain"), [("A.2-2", "A.2-1"), ("A.2-4", "A.2-3")])
def test_encrypted_frame_crc_covers_the_plaintext_segment(cipher: str, plain: str) -> None:
    cipher_raw, plain_raw = frame(cipher), frame(plain)
    f = parse_frame(cipher_raw, key_for=_key_for)
    assert f.encrypted
    assert f.cp == parse_frame(plain_raw).cp
    assert cipher_raw[-4:] == plain_raw[-4:]
    assert ref_crc_hj212(plain_raw[6:-4]) == int(cipher_raw[-4:], 16)
    # the length field counts the plaintext, not the wire
    assert f.declared_length == len(plain_raw) - 10 != len(cipher_raw) - 10


def _frame_segment(segment: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return build_frame(segment)
    data = segment.encode(encoding)
    return b"##%04d%s%04X\r\n" % (len(data), data, ref_crc_hj212(data))


@pytest.mark.parametrize("name", sorted(SEGMENTS))
def test_appendix_c_segment_golden(name: str) -> None:
    folder = SEGMENTS[name]
    segment = (folder / "segment.txt").read_text("utf-8")
    want = expected(folder)
    for framing in want["framings"]:
        encoding = framing["encoding"]
        framed = _frame_segment(segment, encoding)
        data = segment.encode(encoding)
        assert framed == b"##%04d" % framing["length"] + data + framing["crc"].encode() + b"\r\n"
        assert len(data) == framing["length"]
        assert ref_crc_hj212(data) == int(framing["crc"], 16)
        f, actual = describe(framed[:-2])
        assert f.encoding == encoding
        assert f.crc_sent == framing["crc"]
        assert f.segment_length == f.declared_length == framing["length"]
        per_encoding = {
            "encoding": encoding,
            "crc_sent": framing["crc"],
            "declared_length": framing["length"],
            "segment_length": framing["length"],
        }
        _compare(actual, {**want, **per_encoding})


def test_appendix_c_3020_lengths_and_crcs_from_the_readme() -> None:
    """The vectors README: UTF-8 152 bytes CRC 9741, GBK 148 bytes CRC DEC1."""
    segment = (SEGMENTS["C-3020-info-chinese"] / "segment.txt").read_text("utf-8")
    utf8 = build_frame(segment)
    assert utf8[2:6] == b"0152"
    assert utf8[-6:] == b"9741\r\n"
    gbk = segment.encode("gbk")
    assert len(gbk) == 148
    assert f"{ref_crc_hj212(gbk):04X}" == "DEC1"
    for raw in (utf8[:-2], b"##0148" + gbk + b"DEC1"):
        f = parse_frame(raw)
        assert f.crc == "hj212"
        assert f.length_matches
        assert parse_cp(f.cp).items == {"i11001": {"Info": "清洗管路"}}


def _ns(local: str, ms: int = 0) -> int:
    """Epoch ns of a Beijing wall-clock time, computed without zoneinfo (UTC+8, no DST)."""
    parsed = datetime.strptime(local, "%Y%m%d%H%M%S").timetuple()
    return ((calendar.timegm(parsed) - 8 * 3600) * 1000 + ms) * 1_000_000


@pytest.mark.parametrize(
    ("name", "data_time", "iso_utc"),
    [
        ("C-2061-hour", "20160801080000", "2016-08-01T00:00:00Z"),
        ("03-2005-2011-17-digit-datatime", "20160824003817", "2016-08-23T16:38:17Z"),
        ("06-air-2061-hour", "20190924220000", "2019-09-24T14:00:00Z"),
        ("25-2051-qn-after-cn", "20190416003000", "2019-04-15T16:30:00Z"),
        ("27-2061-qn-after-cn", "20190416010000", "2019-04-15T17:00:00Z"),
        ("A.2-2-encrypted", "20240520210600", "2024-05-20T13:06:00Z"),
    ],
)
def test_event_times_follow_beijing_datatime(name: str, data_time: str, iso_utc: str) -> None:
    folder = FRAMES.get(name) or SEGMENTS[name]
    lines = expected(folder)["lines"]
    assert lines
    want_ns = _ns(data_time)
    iso = datetime.fromtimestamp(want_ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert iso == iso_utc
    assert all(line.endswith(f" {want_ns}") for line in lines)


@pytest.mark.parametrize(
    ("name", "interval"),
    [
        ("03-2005-2011-17-digit-datatime", "rtd"),
        ("25-2051-qn-after-cn", "minute"),
        ("27-2061-qn-after-cn", "hour"),
        ("06-air-2061-hour", "hour"),
        ("C-2061-split-pnum2-pno1", "hour"),
    ],
)
def test_interval_tag_follows_the_command(name: str, interval: str) -> None:
    folder = FRAMES.get(name) or SEGMENTS[name]
    lines = expected(folder)["lines"]
    assert lines
    assert all(f",interval={interval} " in line for line in lines)


def test_17_digit_datatime_keeps_milliseconds() -> None:
    segment = (
        "QN=20160824003817123;ST=32;CN=2011;PW=123456;MN=LD130133000015;Flag=4;"
        "CP=&&DataTime=20160824003817123;a21026-Rtd=12.5,a21026-Flag=N&&"
    )
    _, actual = describe(build_frame(segment)[:-2])
    assert actual["lines"] == [
        "emission,enterprise=E1,outlet=O1,mn=LD130133000015,pollutant=a21026,interval=rtd "
        f'rtd=12.5,flag="N",backfill=false {_ns("20160824003817", ms=123)}'
    ]
    assert _ns("20160824003817", ms=123) == 1471970297123000000


def test_golden_inputs_have_no_trailer() -> None:
    for name, folder in FRAMES.items():
        raw: bytes = (folder / "input.txt").read_bytes()
        assert raw.startswith(b"##"), name
        assert not raw.endswith((b"\n", b"\r")), name
