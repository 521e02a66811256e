"""PROXY protocol headers (adapters/hj212/proxy.py): the spec's examples, round trips in any
chunking, garbage, bounds, and the `[hj212]` settings that turn it on."""

from __future__ import annotations

import ipaddress
import itertools
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.hj212.config import Hj212Config
from adapters.hj212.proxy import (
    V1_MAX_BYTES,
    V2_MAX_BYTES,
    V2_SIGNATURE,
    HeaderReader,
    ProxyError,
    ProxyHeader,
    networks,
    parse,
    trusted,
    v1_header,
    v2_header,
)

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
endpoints = st.one_of(
    st.tuples(st.tuples(ipv4, ports), st.tuples(ipv4, ports)),
    st.tuples(st.tuples(ipv6, ports), st.tuples(ipv6, ports)),
)
frame_bytes = st.binary(max_size=300).map(lambda b: b"##" + b)  # what a device sends next


def read_in_pieces(data: bytes, cuts: list[int]) -> tuple[ProxyHeader, bytes]:
    """Feed `data` to a reader cut at `cuts`; the header and the bytes after it."""
    reader = HeaderReader()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(bounds):
        got = reader.feed(data[a:b])
        if got is not None:
            header, rest = got
            return header, rest + data[b:]
    raise AssertionError("the header never completed")


# -- the spec's examples and HAProxy's own bytes --------------------------------------------


def test_v1_tcp4_example() -> None:
    header = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /")
    assert header == ProxyHeader(1, "proxy", ("192.168.0.1", 56324), ("192.168.0.11", 443), 47)


def test_v1_tcp6_and_unknown() -> None:
    header = parse(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")
    assert header is not None
    assert header.source == ("2001:db8::1", 1)
    assert header.destination == ("::1", 65535)
    unknown = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n##")
    assert unknown == ProxyHeader(1, "proxy", None, None, 35)


def test_v2_tcp4_written_by_hand() -> None:
    raw = (
        V2_SIGNATURE
        + bytes([0x21, 0x11, 0x00, 0x0C])
        + bytes([10, 1, 2, 3, 127, 0, 0, 1])
        + (40000).to_bytes(2, "big")
        + (9212).to_bytes(2, "big")
    )
    header = parse(raw + b"##0101")
    assert header == ProxyHeader(2, "proxy", ("10.1.2.3", 40000), ("127.0.0.1", 9212), 28)


def test_v2_tcp6_with_tlvs_skipped() -> None:
    src = ipaddress.IPv6Address("2001:db8::7").packed
    dst = ipaddress.IPv6Address("2001:db8::1").packed
    tlvs = bytes([0x04, 0x00, 0x02, 0xAB, 0xCD]) + bytes([0x01, 0x00, 0x02]) + b"h2"
    body = src + dst + struct.pack("!HH", 5555, 9212) + tlvs
    raw = V2_SIGNATURE + bytes([0x21, 0x21]) + len(body).to_bytes(2, "big") + body
    header = parse(raw)
    assert header is not None
    assert header.source == ("2001:db8::7", 5555)
    assert header.length == len(raw)


def test_v2_local_and_unspec_carry_no_address() -> None:
    local = parse(V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00]))
    assert local == ProxyHeader(2, "local", None, None, 16)
    # LOCAL with addresses (HAProxy health checks may send them): the addresses are ignored
    with_addr = v2_header(("10.0.0.1", 1), ("10.0.0.2", 2), local=True)
    assert parse(with_addr) == ProxyHeader(2, "local", None, None, 28)
    unspec = parse(V2_SIGNATURE + bytes([0x21, 0x00, 0x00, 0x03]) + b"abc")
    assert unspec == ProxyHeader(2, "proxy", None, None, 19)


# -- round trips ------------------------------------------------------------------------------


@given(endpoints, frame_bytes, st.lists(st.integers(0, 400), max_size=8))
def test_v1_round_trip_in_any_pieces(
    ends: tuple[tuple[str, int], tuple[str, int]], after: bytes, cuts: list[int]
) -> None:
    src, dst = ends
    raw = v1_header(src, dst)
    assert len(raw) <= V1_MAX_BYTES
    header, rest = read_in_pieces(raw + after, cuts)
    assert (header.version, header.command) == (1, "proxy")
    assert header.source == src
    assert header.destination == dst
    assert header.length == len(raw)
    assert rest == after


@given(
    endpoints,
    st.binary(max_size=200),
    st.booleans(),
    frame_bytes,
    st.lists(st.integers(0, 600), max_size=8),
)
def test_v2_round_trip_in_any_pieces(
    ends: tuple[tuple[str, int], tuple[str, int]],
    tlvs: bytes,
    local: bool,
    after: bytes,
    cuts: list[int],
) -> None:
    src, dst = ends
    raw = v2_header(src, dst, local=local, tlvs=tlvs)
    header, rest = read_in_pieces(raw + after, cuts)
    assert header.version == 2
    assert header.length == len(raw)
    assert rest == after
    if local:
        assert (header.command, header.source) == ("local", None)
    else:
        assert (header.command, header.source, header.destination) == ("proxy", src, dst)


# -- garbage ----------------------------------------------------------------------------------


def check_verdict(buf: bytes) -> None:
    """Any bytes: a header within them and within its bound, more needed within the bound,
    or ProxyError; nothing else."""
    try:
        header = parse(buf)
    except ProxyError as exc:
        assert exc.reason in ("missing", "malformed", "unsupported")
        return
    if header is None:
        assert len(buf) < V2_MAX_BYTES
        if buf[:1] == b"P":
            assert len(buf) < V1_MAX_BYTES
        return
    assert header.length <= len(buf)
    assert header.length <= (V1_MAX_BYTES if header.version == 1 else V2_MAX_BYTES)


@given(st.binary(max_size=300))
@example(b"")
@example(b"P")
@example(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 1\n")
@example(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd")
def test_garbage_gives_a_verdict(buf: bytes) -> None:
    check_verdict(buf)


@given(st.binary(max_size=120))
def test_garbage_after_v1_prefix(tail: bytes) -> None:
    check_verdict(b"PROXY " + tail)


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_garbage_after_v2_signature(fixed: bytes, body: bytes) -> None:
    check_verdict(V2_SIGNATURE + fixed + body)


@given(st.text(max_size=120))
def test_garbage_v1_lines(text: str) -> None:
    check_verdict(b"PROXY " + text.encode() + b"\r\n")


def test_hj212_frame_is_not_a_header() -> None:
    with pytest.raises(ProxyError) as exc:
        parse(b"##0101QN=20260101000000000;ST=32;CN=2011")
    assert exc.value.reason == "missing"
    reader = HeaderReader()
    assert reader.feed(b"PRO") is None  # could still be one
    with pytest.raises(ProxyError) as exc:
        reader.feed(b"TOCOL")
    assert exc.value.reason == "missing"
    assert reader.buffered == b"PROTOCOL"  # kept: a device's own bytes when optional


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "malformed"),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", "malformed"),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "malformed"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xb2\r\n", "malformed"),
        (V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12), "malformed"),  # version 1
        (V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12), "malformed"),  # command 2
        (V2_SIGNATURE + bytes([0x21, 0x11, 0, 8]) + bytes(8), "malformed"),  # too short
        (V2_SIGNATURE + bytes([0x21, 0x21, 0, 12]) + bytes(12), "malformed"),
        (V2_SIGNATURE + bytes([0x21, 0x41, 0, 0]), "malformed"),  # family 4
        (V2_SIGNATURE + bytes([0x21, 0x12, 0, 12]) + bytes(12), "unsupported"),  # UDP
        (V2_SIGNATURE + bytes([0x21, 0x31, 0, 216]) + bytes(216), "unsupported"),  # UNIX
        (b"\r\n\r\n\x00\r\nQUIT!", "missing"),
    ],
)
def test_broken_headers_are_named(raw: bytes, reason: str) -> None:
    with pytest.raises(ProxyError) as exc:
        parse(raw)
    assert exc.value.reason == reason


def test_bounds() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX_BYTES - 16)  # 105 bytes, no CR LF yet
    assert parse(line) is None
    assert parse(line + b"\r") is None
    header = parse(line + b"\r\n")  # the longest line there is
    assert header is not None
    assert header.length == V1_MAX_BYTES
    with pytest.raises(ProxyError, match="107"):
        parse(line + b"x\r")
    too_long = V2_SIGNATURE + bytes([0x21, 0x11]) + (V2_MAX_BYTES - 15).to_bytes(2, "big")
    with pytest.raises(ProxyError, match="longer"):  # refused before the body is read
        parse(too_long)
    longest = v2_header(("1.2.3.4", 1), ("5.6.7.8", 2), tlvs=bytes(V2_MAX_BYTES - 28))
    assert parse(longest[:-1]) is None
    header = parse(longest)
    assert header is not None
    assert header.length == V2_MAX_BYTES


# -- who may send one -------------------------------------------------------------------------


def test_trusted_addresses() -> None:
    allowed = networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])
    assert trusted("127.0.0.1", allowed)
    assert trusted("10.20.30.40", allowed)
    assert trusted("::ffff:10.1.1.1", allowed)  # a dual-stack listener's IPv4 peer
    assert trusted("fd12::1", allowed)
    assert not trusted("127.0.0.2", allowed)
    assert not trusted("11.0.0.1", allowed)
    assert not trusted("?", allowed)
    assert not trusted("10.0.0.1", ())


def test_settings() -> None:
    cfg = Hj212Config()
    assert (cfg.proxy_protocol, cfg.proxy_from) == ("off", [])
    cfg = Hj212Config(proxy_protocol="required", proxy_from=["127.0.0.1", "10.0.0.0/8", "::1"])
    assert cfg.proxy_header_timeout_s == 5.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"proxy_protocol": "on", "proxy_from": ["127.0.0.1"]}, "'off', 'optional' or"),
        ({"proxy_protocol": "required"}, "proxy_protocol needs proxy_from"),
        ({"proxy_protocol": "optional", "proxy_from": []}, "proxy_protocol needs proxy_from"),
        ({"proxy_from": ["10.0.0.1/8"]}, "host bits set"),
        ({"proxy_from": ["haproxy.local"]}, "does not appear to be an IPv4 or IPv6"),
        ({"proxy_header_timeout_s": 0}, "greater than 0"),
    ],
)
def test_settings_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Hj212Config.model_validate(values)
