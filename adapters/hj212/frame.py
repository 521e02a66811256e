"""Parsing of one raw HJ 212 frame (``##`` through the CRC) into a `Frame`. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import sm4
from .crc import CrcVariant, crc_variant
from .errors import DecryptError, FramingError, HeaderError

# canonical spelling of header keys, matched case-insensitively
_HEADER_KEYS = {k.upper(): k for k in ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO", "RF")}
MAX_SEGMENT = 9999

KeyLookup = Callable[[str], bytes | None]


@dataclass(slots=True)
class Frame:
    """One HJ 212 frame. `cp` is the plaintext data area (decrypted if it was encrypted).

    Treat it as read-only (not frozen only because frozen dataclasses are slow to build).
    """

    cn: str
    mn: str
    qn: str | None
    st: str | None
    pw: str | None
    flag: int | None
    pnum: int | None
    pno: int | None
    rf: str | None
    header: tuple[tuple[str, str], ...]
    cp: str
    crc_sent: str
    crc: CrcVariant
    declared_length: int
    segment_length: int
    encrypted: bool
    encoding: str

    @property
    def version(self) -> int:
        """Protocol version bits (``Flag >> 2``): 0 = 2005, 1 = 2017, 2 = 2025."""
        return (self.flag or 0) >> 2

    @property
    def wants_reply(self) -> bool:
        return bool((self.flag or 0) & 1)

    @property
    def is_split(self) -> bool:
        return self.pnum is not None and self.pno is not None

    @property
    def backfill(self) -> bool:
        """Marked as back-filled by the device (HJ 212-2025 ``RF=1``)."""
        return self.rf == "1"

    @property
    def length_matches(self) -> bool:
        return self.declared_length == self.segment_length


def decode_text(raw: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8, else GBK, else UTF-8 with replacement characters."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gbk"), "gbk"
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="surrogateescape"), "invalid"


def parse_frame(raw: bytes, key_for: KeyLookup | None = None) -> Frame:
    """Parse a raw frame. Raises an HJ212Error subclass; never anything else.

    The CRC is checked but not judged: `Frame.crc` says which variant matched (or ``none``),
    and the caller applies the device's CRC policy. `key_for(mn)` gives the SM4 key for
    devices that encrypt their CP area.
    """
    if len(raw) < 12 or raw[:2] != b"##" or not raw[2:6].isdigit():
        raise FramingError("frame does not start with ## and 4 length digits")
    declared = int(raw[2:6])
    wire_segment = raw[6:-4]
    crc_sent = raw[-4:].decode("ascii", errors="replace")
    if len(wire_segment) > 8 * MAX_SEGMENT:
        raise FramingError(f"data segment of {len(wire_segment)} bytes is too long")
    text, encoding = decode_text(wire_segment)
    cp_at = text.find("CP=&&")
    if cp_at < 0:
        raise HeaderError("no CP=&& in the data segment")
    close = text.rfind("&&")
    if close < cp_at + 5:
        raise HeaderError("CP area is not closed by &&")
    fields: list[tuple[str, str]] = []
    _split_header(text[:cp_at], fields)
    _split_header(text[close + 2 :], fields)  # fields some devices put after CP
    header = {_HEADER_KEYS.get(k.upper(), k): v for k, v in fields}
    mn = header.get("MN", "")
    cn = header.get("CN", "")
    if not cn or not cn.isdigit():
        raise HeaderError(f"CN {cn!r} is missing or not a number", reason="no_cn")
    cp = text[cp_at + 5 : close]
    segment = wire_segment
    encrypted = sm4.is_encrypted(cp)
    if encrypted:
        key = key_for(mn) if key_for is not None else None
        if key is None:
            raise HeaderError(f"encrypted CP from MN {mn!r} and no key for it", reason="no_key")
        wire_cp = wire_segment.find(b"CP=&&") + 5
        wire_close = wire_segment.rfind(b"&&")
        plain = sm4.decrypt_area(wire_segment[wire_cp:wire_close], key)
        segment = wire_segment[:wire_cp] + plain + wire_segment[wire_close:]
        cp, cp_encoding = decode_text(plain)
        if cp_encoding == "invalid":
            raise DecryptError("decrypted CP is not text (wrong key?)")
    return Frame(
        cn=cn,
        mn=mn,
        qn=header.get("QN"),
        st=header.get("ST"),
        pw=header.get("PW"),
        flag=_int_or_none(header.get("Flag"), "Flag"),
        pnum=_int_or_none(header.get("PNUM"), "PNUM"),
        pno=_int_or_none(header.get("PNO"), "PNO"),
        rf=header.get("RF"),
        header=tuple(fields),
        cp=cp,
        crc_sent=crc_sent,
        crc=crc_variant(segment, crc_sent),
        declared_length=declared,
        segment_length=len(segment),
        encrypted=encrypted,
        encoding=encoding,
    )


def _split_header(text: str, out: list[tuple[str, str]]) -> None:
    for part in text.replace(",", ";").split(";"):
        key, eq, value = part.partition("=")
        key = key.strip()
        if eq and key:
            out.append((key, value.strip()))


def _int_or_none(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise HeaderError(f"{name}={value!r} is not an integer", reason="bad_header") from None
