"""What the codec refuses beyond the CRC (which keeps 8 bits of state): header fields of the
wrong shape, lengths nobody counts, respelled cipher bytes, CRCs in two cases, data areas that
are not key=value items, values that are not HJ 212 numbers, flags, times out of the window;
and line protocol that InfluxDB would refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.hj212.builder import build_encrypted_frame, build_frame
from adapters.hj212.convert import Source, TimeWindow, check_upload, number
from adapters.hj212.cp import parse_cp
from adapters.hj212.crc import crc_hj212, crc_variant
from adapters.hj212.errors import HJ212Error
from adapters.hj212.frame import parse_frame
from gateway.influx.lineproto import MAX_TIME_NS, MIN_TIME_NS, encode_point, unstorable
from gateway.model import Point

from .vectors import KEY, frame

HEAD = "QN=20260301090000123;ST=32;CN=2061;PW=123456;MN=M1;Flag=5;"
CP = "DataTime=20260301080000;w01018-Avg=40.1,w01018-Flag=N"
SOURCE = Source("E1", "O1", ZoneInfo("Asia/Shanghai"))
NOW = datetime(2026, 3, 1, 2, tzinfo=UTC)
WINDOW = TimeWindow(timedelta(days=3660), timedelta(days=1))


def raw(segment: str) -> bytes:
    return build_frame(segment)[:-2]


def reason(data: bytes) -> str:
    with pytest.raises(HJ212Error) as caught:
        parse_frame(data, key_for=lambda mn: KEY)
    return caught.value.reason


# -- header ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "why"),
    [
        ("QN=2026030109000012;ST=32;CN=2061;PW=1;MN=M1;", "bad_qn"),  # 16 digits
        ("QN=20261301090000123;ST=32;CN=2061;PW=1;MN=M1;", "bad_qn"),  # month 13
        ("QN=;ST=32;CN=2061;PW=1;MN=M1;", "bad_qn"),
        ("QN=2026030109000012x;ST=32;CN=2061;PW=1;MN=M1;", "bad_qn"),
        ("ST=3;CN=2061;PW=1;MN=M1;", "bad_header"),
        ("ST=32;CN=206;PW=1;MN=M1;", "bad_header"),
        ("ST=32;CN=20611;PW=1;MN=M1;", "bad_header"),
        ("ST=32;PW=1;MN=M1;", "no_cn"),
        ("ST=32;CN=2061;PW=1;", "bad_header"),  # no MN
        ("ST=32;CN=2061;PW=1;MN=M 1;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M\\1;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;Flag=x;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;Flag=256;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;PNUM=2;", "bad_header"),  # PNO missing
        ("ST=32;CN=2061;PW=1;MN=M1;PNUM=2;PNO=3;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;PNUM=2;PNO=0;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;RF=2;", "bad_header"),
        ("ST=32;CN=2061;PW=1 2;MN=M1;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;MN=M2;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;;", "bad_header"),
        ("ST=32;CN=2061;PW1;MN=M1;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1;X-Y=1;", "bad_header"),
        ("ST=32;CN=2061;PW=1;MN=M1", "bad_header"),  # no separator before CP
    ],
)
def test_malformed_headers_are_refused(head: str, why: str) -> None:
    assert reason(raw(head + "CP=&&" + CP + "&&")) == why


def test_well_formed_headers_pass() -> None:
    for head in (
        HEAD,
        "ST=32;CN=2011;PW=;MN=LD130133000015;",  # 2005: no QN, no Flag, empty PW
        "qn=20260301090000123,st=32,cn=2061,pw=123456,mn=M1,flag=5,",  # case, commas
        HEAD + "PNUM=2;PNO=2;RF=1;Vendor_Key=abc;",
    ):
        f = parse_frame(raw(head + "CP=&&" + CP + "&&"))
        assert f.cn in ("2061", "2011") and f.crc == "hj212" and f.length_ok


def test_errors_after_the_header_name_the_mn_but_no_value() -> None:
    data = raw("QN=2026030109000012x;ST=32;CN=2061;PW=s3cretPW;MN=M1;CP=&&" + CP + "&&")
    with pytest.raises(HJ212Error) as caught:
        parse_frame(data)
    assert caught.value.reason == "bad_qn" and "2026" not in str(caught.value)
    data = raw("QN=20260301090000123;ST=32;CN=2061;PW=s3cretPW;MN=M1;Flag=9;CP=&&{0x01}&&")
    with pytest.raises(HJ212Error) as caught:
        parse_frame(data)  # no key for M1
    assert (caught.value.reason, caught.value.mn) == ("no_key", "M1")
    # a PW swallowed by a malformed field is not shown either
    data = raw("ST=32;CN=2061;PWs3cretPW;MN=M1;CP=&&" + CP + "&&")
    with pytest.raises(HJ212Error) as caught:
        parse_frame(data)
    assert "s3cret" not in str(caught.value)


def test_bytes_neither_utf8_nor_gbk_are_refused() -> None:
    segment = (HEAD + "CP=&&" + CP + "&&").encode().replace(b"PW=123456", b"PW=\xff\xfe\x80")
    data = b"##%04d" % len(segment) + segment + b"%04X" % crc_hj212(segment)
    assert reason(data) == "encoding"


# -- length ----------------------------------------------------------------------------------


def test_lengths_devices_count_pass_and_others_do_not() -> None:
    segment = HEAD + "CP=DataTime=20260301080000;i11001-Info=//清洗//&&".replace("CP=", "CP=&&")
    data = segment.encode()
    crc = b"%04X" % crc_hj212(data)
    assert len(data) != len(segment)
    for declared, ok in ((len(data), True), (len(segment), True), (len(data) + 1, False)):
        f = parse_frame(b"##%04d" % declared + data + crc)
        assert f.length_ok is ok, declared
    # an encrypted frame counts its plaintext, or the bytes on the wire
    plain = frame("A.2-1")
    cipher = frame("A.2-2")
    f = parse_frame(cipher, key_for=lambda mn: KEY)
    assert f.length_ok and f.declared_length == len(plain) - 10
    fields = [("QN", "20240520210700000"), ("ST", "31"), ("CN", "2051"), ("MN", "M1"), ("Flag", 9)]
    wire = build_encrypted_frame(fields, CP, KEY, wire_length=True)[:-2]
    assert parse_frame(wire, key_for=lambda mn: KEY).length_ok
    lying = b"##0300" + cipher[6:]
    assert not parse_frame(lying, key_for=lambda mn: KEY).length_ok
    # published frame 20: a length off by 3 (and a CRC matching nothing)
    assert not parse_frame(frame(20)).length_ok


# -- cipher spelling and CRC case ------------------------------------------------------------


def test_a_cipher_byte_respelled_is_refused() -> None:
    cipher = frame("A.2-2")
    at = cipher.index(b"0xE4")
    for respelled in (b"0xe4", b"0XE4", b"0xE4 ", b"0x E4"):
        data = cipher[:at] + respelled + cipher[at + 4 :]
        assert reason(data) == "bad_cipher", respelled
    lower = cipher.replace(b"0x", b"0X")
    assert parse_frame(lower, key_for=lambda mn: KEY).cp == parse_frame(frame("A.2-1")).cp


def test_a_crc_in_two_cases_matches_nothing() -> None:
    cases = 0
    for i in range(2000):
        data = b"CN=%d;" % i
        printed = f"{crc_hj212(data):04X}"
        letters = [k for k, c in enumerate(printed) if c.isalpha()]
        if len(letters) < 2:
            continue
        mixed = printed[: letters[0]] + printed[letters[0]].lower() + printed[letters[0] + 1 :]
        assert crc_variant(data, printed) == crc_variant(data, printed.lower()) == "hj212"
        assert crc_variant(data, mixed) == "none", mixed
        cases += 1
    assert cases > 100


# -- data area -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "DataTime=20260301080000;a21026-Rtd",  # no =
        "DataTime=20260301080000;;a21026-Rtd=1",
        ";DataTime=20260301080000",
        "DataTime=20260301080000;a21026\\-Rtd=1",  # a code with a backslash
        "DataTime=20260301080000;a 21026-Rtd=1",
        "DataTime=20260301080000;a21026-Rtd= 1",
        "DataTime=20260301080000;a21026-Rtd=1\n",
        "DataTime=20260301080000;a21026-Rtd=1;a21026-Rtd=2",
        "DataTime=20260301080000;DataTime=20260301090000",
        "DataTime=20260301080000;i11001-Info=//x//y",
        "DataTime=20260301080000;i11001-Info=//x",
    ],
)
def test_strict_data_areas_refuse_what_is_not_items(text: str) -> None:
    with pytest.raises(HJ212Error) as caught:
        parse_cp(text, strict=True)
    assert caught.value.reason == "cp"


def test_strict_data_areas_take_what_the_tolerant_parser_takes_well_formed() -> None:
    for text in (
        "",
        CP,
        CP + ";",
        "DataTime=20260301080000,a21026-Rtd=1,SB1-RS=1;w01008-SampleTime=20260301080000",
        "DataTime=20160801080000;PolId=w01018;i11001-Info=//清洗管路; x//",
    ):
        got, want = parse_cp(text, strict=True), parse_cp(text)
        assert (got.params, got.items) == (want.params, want.items)


item_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(item_text, item_text), max_size=6), st.sampled_from([";", ","]))
def test_strict_parse_agrees_with_itself_item_by_item(
    items: list[tuple[str, str]], sep: str
) -> None:
    """The one-pass check and the item-by-item one say the same (or both refuse)."""
    text = sep.join(f"{k}={v}" for k, v in items)
    try:
        cp = parse_cp(text, strict=True)
    except HJ212Error:
        return
    assert len(cp.params) + sum(map(len, cp.items.values())) == len(items)


# -- values, flags, times --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "-1", "0.5", "007", "-12.250", "123456789012345.5"])
def test_hj212_numbers(value: str) -> None:
    assert number(value) == float(value)


@pytest.mark.parametrize(
    "value",
    ["", "nan", "inf", "-inf", "1e5", "1_000", " 1", "1 ", "+1", ".5", "5.", "1.2.3", "١٢", "0x1"],
)
def test_not_hj212_numbers(value: str) -> None:
    assert number(value) is None
    assert number("1" * 16) is None  # more digits than a float holds exactly
    with pytest.raises(HJ212Error) as caught:
        cp = parse_cp(f"DataTime=20260301080000;a21026-Rtd={value}", strict=True)
        check_upload(cp, SOURCE, NOW, WINDOW)
    assert caught.value.reason == ("cp" if value != value.strip() else "bad_value")


@pytest.mark.parametrize(
    ("items", "why"),
    [
        ("a21026-Flag=n", "bad_flag"),
        ("a21026-Flag=NN", "bad_flag"),
        ("a21026-Flag=", "bad_flag"),
        ("a21026-Flag=1", "bad_flag"),
        ("a21026-EFlag=A 1", "bad_flag"),
        ("SB1-RS=1.5", "bad_value"),
        ("SB1-RT=x", "bad_value"),
    ],
)
def test_flags_and_states(items: str, why: str) -> None:
    cp = parse_cp(f"DataTime=20260301080000;{items}")
    with pytest.raises(HJ212Error) as caught:
        check_upload(cp, SOURCE, NOW, WINDOW)
    assert caught.value.reason == why


def test_flags_of_every_version_pass() -> None:
    items = ";".join(f"a2102{i}-Flag={flag}" for i, flag in enumerate("NFMSDCTBPJ"))
    cp = parse_cp(f"DataTime=20260301080000;{items};a21026-EFlag=A01")
    assert check_upload(cp, SOURCE, NOW, WINDOW) == datetime(2026, 3, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data_time", "why"),
    [
        (None, "bad_time"),
        ("2026030108", "bad_time"),
        ("20260231080000", "bad_time"),
        ("99991231235959", "implausible_time"),
        ("00010101000000", "bad_time"),  # before datetime's range in UTC
        ("20260302100001", "implausible_time"),  # 1 day + 1 s ahead (Beijing time)
        ("20160221100000", "implausible_time"),  # 3661 days back
    ],
)
def test_data_times_outside_the_window_are_refused(data_time: str | None, why: str) -> None:
    text = "a21026-Rtd=1" if data_time is None else f"DataTime={data_time};a21026-Rtd=1"
    with pytest.raises(HJ212Error) as caught:
        check_upload(parse_cp(text), SOURCE, NOW, WINDOW)
    assert caught.value.reason == why


def test_the_window_edges_pass() -> None:
    for data_time in ("20260302100000", "20160222100000"):  # +1 day, -3660 days (Beijing)
        check_upload(parse_cp(f"DataTime={data_time}"), SOURCE, NOW, WINDOW)


# -- line protocol ---------------------------------------------------------------------------


def point(tags: dict[str, str], fields: dict[str, object], ns: int = 0) -> Point:
    return Point("emission", tuple(tags.items()), tuple(fields.items()), ns)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tags", "fields", "ns"),
    [
        ({"pollutant": "a21026\\"}, {"avg": 1.0}, 0),
        ({"pollutant": "a\\,b"}, {"avg": 1.0}, 0),
        ({"pollutant": "a\nb"}, {"avg": 1.0}, 0),
        ({"time": "x"}, {"avg": 1.0}, 0),
        ({"mn": "M1"}, {"time": 1.0}, 0),
        ({"mn": "M1"}, {"flag": "N\n"}, 0),
        ({"mn": "M1"}, {"flag": "x" * 65537}, 0),
        ({"mn": "M1"}, {"avg": float("nan")}, 0),
        ({"mn": "M1"}, {"n": 2**63}, 0),
        ({"mn": "M1"}, {}, 0),
        ({"mn": "M1"}, {"avg": 1.0}, MAX_TIME_NS + 1),
        ({"mn": "M1"}, {"avg": 1.0}, MIN_TIME_NS - 1),
    ],
)
def test_what_influxdb_refuses_is_named(
    tags: dict[str, str], fields: dict[str, object], ns: int
) -> None:
    assert unstorable(point(tags, fields, ns)) is not None


def test_what_influxdb_takes_is_storable_and_escaped() -> None:
    p = point(
        {"enterprise": "E 1,x=y", "pollutant": "a21026", "empty": ""},
        {"flag": 'say "hi" \\', "avg": -0.0, "rs": 1, "backfill": True},
        MAX_TIME_NS,
    )
    assert unstorable(p) is None
    assert encode_point(p) == (
        "emission,enterprise=E\\ 1\\,x\\=y,pollutant=a21026 "
        'flag="say \\"hi\\" \\\\",avg=-0.0,rs=1i,backfill=true 9223372036854775806'
    )
