"""PROXY protocol headers (HAProxy's v1 text and v2 binary), parsed without I/O.

A load balancer in front of the HJ 212 server (HAProxy `send-proxy` / `send-proxy-v2`, LVS
with a PROXY module) begins each connection it forwards with one header naming the device's own
address. `HeaderReader` takes the first bytes of a connection in whatever pieces they arrive
and returns the header and the bytes after it, or raises `ProxyError`. Bounded: a v1 header is
at most 107 bytes, a v2 header 16 bytes plus its length, at most `V2_MAX_BYTES` in all.

Understood: v1 `TCP4`, `TCP6` and `UNKNOWN`; v2 `PROXY` over TCP on IPv4 or IPv6, `PROXY`
with family `UNSPEC`, and `LOCAL` (a health check: no address). TLVs are skipped. UDP and
UNIX sockets are refused (`unsupported`).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Literal

V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107  # the spec's longest line, CR LF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX_BYTES = 16 + 4096  # the fixed part plus addresses and TLVs; longer is refused

Reason = Literal["missing", "malformed", "unsupported"]
Address = tuple[str, int]

_V2_FIXED = struct.Struct("!12sBBH")
_V2_INET = struct.Struct("!4s4sHH")
_V2_INET6 = struct.Struct("!16s16sHH")


class ProxyError(ValueError):
    """The bytes are not a header (`missing`), a broken one (`malformed`) or one for a
    transport the server does not serve (`unsupported`)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One parsed header. `source` and `destination` are None when the header carries no
    address (v1 `UNKNOWN`, v2 `LOCAL` or `UNSPEC`): the connection's own endpoints apply."""

    version: Literal[1, 2]
    command: Literal["proxy", "local"]
    source: Address | None
    destination: Address | None
    length: int  # bytes of the header on the wire


def parse(buf: bytes) -> ProxyHeader | None:
    """The header at the start of `buf`, or None when more bytes are needed. Raises
    `ProxyError` when `buf` cannot begin a header or the header is broken."""
    if buf[:1] == V1_PREFIX[:1]:
        return _parse_v1(buf)
    if buf[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(buf)
    if not buf:
        return None
    raise ProxyError("missing", "the connection does not begin with a PROXY header")


class HeaderReader:
    """Collects the first bytes of a connection until its header is whole."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    @property
    def buffered(self) -> bytes:
        """The bytes taken so far (what a connection without a header sent)."""
        return self._buf

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        """Add bytes; return the header and the bytes that follow it once it is whole."""
        self._buf += data
        header = parse(self._buf)
        if header is None:
            return None
        rest = self._buf[header.length :]
        self._buf = b""
        return header, rest


# -- v1 ---------------------------------------------------------------------------------------


def _parse_v1(buf: bytes) -> ProxyHeader | None:
    head = buf[:V1_MAX_BYTES]
    if not head.startswith(V1_PREFIX[: len(head)]):
        raise ProxyError("missing", "the connection does not begin with a PROXY header")
    end = head.find(b"\r\n")
    if end < 0:
        if len(head) >= V1_MAX_BYTES:
            raise ProxyError("malformed", f"v1 header without CR LF in {V1_MAX_BYTES} bytes")
        if b"\n" in head or b"\r" in head[:-1]:
            raise ProxyError("malformed", "v1 header with a stray CR or LF")
        return None
    line = head[:end]  # begins with V1_PREFIX: a CR before its 6th byte failed the check above
    if not line.isascii() or b"\n" in line or b"\r" in line:
        raise ProxyError("malformed", "v1 header with bytes other than ASCII text")
    parts = line.decode("ascii").split(" ")
    length = end + 2
    if parts[1] == "UNKNOWN":  # the rest of the line is to be ignored
        return ProxyHeader(1, "proxy", None, None, length)
    if parts[1] not in ("TCP4", "TCP6"):
        raise ProxyError("malformed", "v1 protocol must be TCP4, TCP6 or UNKNOWN")
    if len(parts) != 6:
        raise ProxyError("malformed", "v1 header must be PROXY proto src dst sport dport")
    version = 4 if parts[1] == "TCP4" else 6
    src = _v1_address(parts[2], version)
    dst = _v1_address(parts[3], version)
    sport, dport = _v1_port(parts[4]), _v1_port(parts[5])
    return ProxyHeader(1, "proxy", (src, sport), (dst, dport), length)


def _v1_address(text: str, version: int) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyError("malformed", "v1 address is not an IP address") from None
    if ip.version != version:
        raise ProxyError("malformed", f"v1 address is not IPv{version}")
    return str(ip)


def _v1_port(text: str) -> int:
    digits = text.isascii() and text.isdigit()
    if not digits or len(text) > 5 or (text.startswith("0") and text != "0") or int(text) > 65535:
        raise ProxyError("malformed", "v1 port must be 0-65535 without leading zeros")
    return int(text)


# -- v2 ---------------------------------------------------------------------------------------


def _parse_v2(buf: bytes) -> ProxyHeader | None:
    n = min(len(buf), len(V2_SIGNATURE))
    if buf[:n] != V2_SIGNATURE[:n]:
        raise ProxyError("missing", "the connection does not begin with a PROXY header")
    if len(buf) < _V2_FIXED.size:
        return None
    _sig, ver_cmd, family, size = _V2_FIXED.unpack_from(buf)
    if ver_cmd >> 4 != 2:
        raise ProxyError("malformed", "v2 header with a version other than 2")
    command = ver_cmd & 0x0F
    if command not in (0, 1):
        raise ProxyError("malformed", "v2 command must be LOCAL or PROXY")
    length = _V2_FIXED.size + size
    if length > V2_MAX_BYTES:
        raise ProxyError("malformed", f"v2 header longer than {V2_MAX_BYTES} bytes")
    if len(buf) < length:
        return None
    body = buf[_V2_FIXED.size : length]
    if command == 0:  # LOCAL: the proxy's own connection; addresses (if any) are ignored
        return ProxyHeader(2, "local", None, None, length)
    if family == 0x00:  # UNSPEC: the proxy does not know; the connection's endpoints apply
        return ProxyHeader(2, "proxy", None, None, length)
    if family == 0x11:
        layout, version = _V2_INET, 4
    elif family == 0x21:
        layout, version = _V2_INET6, 6
    elif family >> 4 in (1, 2, 3) and family & 0x0F in (1, 2):
        raise ProxyError("unsupported", "v2 header for UDP or a UNIX socket")
    else:
        raise ProxyError("malformed", "v2 address family or transport unknown")
    if len(body) < layout.size:
        raise ProxyError("malformed", "v2 header shorter than its addresses")
    src, dst, sport, dport = layout.unpack_from(body)
    ip = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return ProxyHeader(2, "proxy", (str(ip(src)), sport), (str(ip(dst)), dport), length)


# -- building (the tests, and a device simulator behind a proxy) ------------------------------


def v1_header(source: Address | None, destination: Address | None) -> bytes:
    """A v1 line for these endpoints (both IPv4 or both IPv6), or `UNKNOWN` without them."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    proto = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    line = f"PROXY {proto} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    return line.encode("ascii")


def v2_header(
    source: Address | None, destination: Address | None, *, local: bool = False, tlvs: bytes = b""
) -> bytes:
    """A v2 header: PROXY over TCP for these endpoints, UNSPEC without them, or LOCAL."""
    ver_cmd = 0x20 if local else 0x21
    if source is None or destination is None:
        family, body = 0x00, b""
    else:
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
        layout = _V2_INET if src.version == 4 else _V2_INET6
        family = 0x11 if src.version == 4 else 0x21
        body = layout.pack(src.packed, dst.packed, source[1], destination[1])
    body += tlvs
    return _V2_FIXED.pack(V2_SIGNATURE, ver_cmd, family, len(body)) + body


# -- who may send one -------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: list[str]) -> tuple[Network, ...]:
    """`proxy_from` as networks (a bare address is a network of one)."""
    return tuple(ipaddress.ip_network(item) for item in items)


def trusted(address: str, allowed: tuple[Network, ...]) -> bool:
    """Whether a peer's socket address is one of `allowed` (an IPv4-mapped IPv6 address, as a
    dual-stack listener sees IPv4 peers, counts as its IPv4 address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in allowed)
