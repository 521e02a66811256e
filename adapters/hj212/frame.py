"""Parsing of one raw HJ 212 frame (``##`` through the CRC) into a `Frame`. Pure, no I/O.

The header must parse completely: every field ``key=value`` (``;`` or ``,`` between fields),
known keys in their format (QN yyyyMMddHHmmssSSS, ST 2 digits, CN 4 digits, MN of letters,
digits, ``.``, ``_``, ``-``, Flag a byte, PNUM/PNO together), other keys well-formed, none twice.
Whether the length field and the CRC fit is for the caller to judge (`Frame.length_ok`,
`Frame.crc`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import sm4
from .cp import parse_hj212_time
from .crc import CrcVariant, crc_variant
from .errors import DecryptError, FramingError, HeaderError, HJ212Error

# canonical spelling of header keys, matched case-insensitively
_HEADER_KEYS = {k.upper(): k for k in ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO", "RF")}
MAX_SEGMENT = 9999
_SEPARATOR = re.compile(r"[;,]")
_QN = re.compile(r"[0-9]{17}")
_ST = re.compile(r"[0-9]{2}")
_CN = re.compile(r"[0-9]{4}")
_MN = re.compile(r"[0-9A-Za-z._-]{1,64}")
_FLAG = re.compile(r"[0-9]{1,3}")
_PACKET = re.compile(r"[0-9]{1,4}")
_PW = re.compile(r"[^\x00-\x20\x7f]{0,64}")
_OTHER_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_OTHER_VALUE = re.compile(r"[^\x00-\x20\x7f]{0,128}")
# an encrypted area as devices print it: 0xHH bytes, one spelling for all of them
_CIPHER = (
    re.compile(rb"\{(0[xX])[0-9A-F]{2}(?:,\1[0-9A-F]{2})*\}"),
    re.compile(rb"\{(0[xX])[0-9a-f]{2}(?:,\1[0-9a-f]{2})*\}"),
)

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
    segment_length: int  # bytes of the (plaintext) data segment
    encrypted: bool
    encoding: str
    char_length: int = 0  # characters of the (plaintext) data segment
    wire_length: int = 0  # bytes of the data segment as sent (differs when encrypted)

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
        """The length field counts the bytes of the (plaintext) data segment."""
        return self.declared_length == self.segment_length

    @property
    def length_ok(self) -> bool:
        """The length field counts what some device may count: the bytes or the characters
        of the (plaintext) data segment, or for an encrypted frame the bytes sent."""
        declared = self.declared_length
        return (
            declared == self.segment_length
            or declared == self.char_length
            or (self.encrypted and declared == self.wire_length)
        )


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
    if encoding == "invalid":
        text, encoding = _decode_around_cipher(wire_segment)
    cp_at = text.find("CP=&&")
    if cp_at < 0:
        raise HeaderError("no CP=&& in the data segment")
    close = text.rfind("&&")
    if close < cp_at + 5:
        raise HeaderError("CP area is not closed by &&")
    fields: list[tuple[str, str]] = []
    _split_header(text[:cp_at], fields, before_cp=True)
    _split_header(text[close + 2 :], fields, before_cp=False)  # fields some devices put after CP
    header = _header(fields)
    try:
        return _frame(declared, crc_sent, wire_segment, text, encoding, header, fields, key_for)
    except HJ212Error as exc:
        exc.mn = header["MN"]  # the caller may name the device it refuses
        raise


def _frame(
    declared: int,
    crc_sent: str,
    wire_segment: bytes,
    text: str,
    encoding: str,
    header: dict[str, str],
    fields: list[tuple[str, str]],
    key_for: KeyLookup | None,
) -> Frame:
    """The frame of a parsed header: field formats checked, CP decrypted if need be."""
    mn = header["MN"]
    cn = header.get("CN")
    if cn is None:
        raise HeaderError("no CN in the header", reason="no_cn")
    if _CN.fullmatch(cn) is None:
        raise HeaderError("CN is not 4 digits", reason="bad_header")
    qn = header.get("QN")
    if qn is not None:
        _check_qn(qn)
    st = header.get("ST")
    if st is not None and _ST.fullmatch(st) is None:
        raise HeaderError("ST is not 2 digits", reason="bad_header")
    pw = header.get("PW")
    if pw is not None and _PW.fullmatch(pw) is None:
        raise HeaderError("PW holds blanks or control characters", reason="bad_header")
    rf = header.get("RF")
    if rf is not None and rf not in ("0", "1"):
        raise HeaderError("RF is neither 0 nor 1", reason="bad_header")
    flag = _number(header.get("Flag"), "Flag", _FLAG, 255)
    pnum = _number(header.get("PNUM"), "PNUM", _PACKET, 9999)
    pno = _number(header.get("PNO"), "PNO", _PACKET, 9999)
    if (pnum is None) != (pno is None):
        raise HeaderError("PNUM and PNO come together", reason="bad_header")
    if pnum is not None and pno is not None and not 1 <= pno <= pnum:
        raise HeaderError(f"PNO {pno} is outside 1..PNUM ({pnum})", reason="bad_header")
    cp_at = text.find("CP=&&")
    close = text.rfind("&&")
    cp = text[cp_at + 5 : close]
    segment = wire_segment
    char_length = len(text)
    encrypted = sm4.is_encrypted(cp)
    if encrypted:
        key = key_for(mn) if key_for is not None else None
        if key is None:
            raise HeaderError(f"encrypted CP from MN {mn} and no key for it", reason="no_key")
        wire_cp = wire_segment.find(b"CP=&&") + 5
        wire_close = wire_segment.rfind(b"&&")
        area = wire_segment[wire_cp:wire_close]
        brace = area.find(b"}") + 1
        if brace == 0 or not any(p.fullmatch(area, 0, brace) for p in _CIPHER):
            raise HeaderError(
                "encrypted CP is not 0xHH bytes in one spelling between { and }",
                reason="bad_cipher",
            )
        plain = sm4.decrypt_area(area, key)
        segment = wire_segment[:wire_cp] + plain + wire_segment[wire_close:]
        cp, cp_encoding = decode_text(plain)
        if cp_encoding == "invalid":
            raise DecryptError("decrypted CP is not text (wrong key?)")
        char_length = cp_at + 5 + len(cp) + len(text) - close
    return Frame(
        cn=cn,
        mn=mn,
        qn=qn,
        st=st,
        pw=pw,
        flag=flag,
        pnum=pnum,
        pno=pno,
        rf=rf,
        header=tuple(fields),
        cp=cp,
        crc_sent=crc_sent,
        crc=crc_variant(segment, crc_sent),
        declared_length=declared,
        segment_length=len(segment),
        encrypted=encrypted,
        encoding=encoding,
        char_length=char_length,
        wire_length=len(wire_segment),
    )


def _decode_around_cipher(wire_segment: bytes) -> tuple[str, str]:
    """(text, encoding) of a segment that is not text as a whole: allowed only when what is
    not text lies in an encrypted CP area, whose clear tail may begin inside a character."""
    cp_at = wire_segment.find(b"CP=&&") + 5
    close = wire_segment.rfind(b"&&")
    if cp_at < 5 or close < cp_at or wire_segment[cp_at : cp_at + 3].lower() != b"{0x":
        raise FramingError("data segment is neither UTF-8 nor GBK text", reason="encoding")
    head, encoding = decode_text(wire_segment[:cp_at])
    tail, tail_encoding = decode_text(wire_segment[close:])
    if "invalid" in (encoding, tail_encoding):
        raise FramingError("header is neither UTF-8 nor GBK text", reason="encoding")
    area = wire_segment[cp_at:close].decode("ascii", errors="replace")  # replaced by the plaintext
    return head + area + tail, encoding


def _split_header(text: str, out: list[tuple[str, str]], *, before_cp: bool) -> None:
    """Header fields of `text`, each ``key=value``; ``;`` or ``,`` between them. Before CP the
    text ends with a separator; after CP it may begin with one."""
    if not text:
        return
    parts = _SEPARATOR.split(text)
    if before_cp:
        if parts[-1]:
            raise HeaderError("no separator between the header and CP", reason="bad_header")
        parts.pop()
    else:
        if not parts[0]:
            parts.pop(0)
        if parts and not parts[-1]:
            parts.pop()
    for number, part in enumerate(parts, len(out) + 1):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise HeaderError(f"header field {number} is not key=value", reason="bad_header")
        out.append((key, value))


def _header(fields: list[tuple[str, str]]) -> dict[str, str]:
    """Fields by canonical key; known keys are matched case-insensitively."""
    header: dict[str, str] = {}
    for number, (key, value) in enumerate(fields, 1):
        name = _HEADER_KEYS.get(key.upper())
        if name is None:
            if _OTHER_KEY.fullmatch(key) is None or _OTHER_VALUE.fullmatch(value) is None:
                raise HeaderError(f"header field {number} is malformed", reason="bad_header")
            name = key
        if name in header:
            raise HeaderError(f"header field {number} repeats a key", reason="bad_header")
        header[name] = value
    mn = header.get("MN")
    if mn is None:
        raise HeaderError("no MN in the header", reason="bad_header")
    if _MN.fullmatch(mn) is None:
        raise HeaderError("MN is not 1-64 letters, digits, '.', '_' or '-'", reason="bad_header")
    return header


def _check_qn(qn: str) -> None:
    if _QN.fullmatch(qn) is None:
        raise HeaderError("QN is not yyyyMMddHHmmssSSS", reason="bad_qn")
    try:
        parse_hj212_time(qn)
    except HJ212Error:
        raise HeaderError("QN is not a valid time", reason="bad_qn") from None


def _number(value: str | None, name: str, shape: re.Pattern[str], top: int) -> int | None:
    if value is None:
        return None
    if shape.fullmatch(value) is None or int(value) > top:
        raise HeaderError(f"{name} is not an integer of 0..{top}", reason="bad_header")
    return int(value)
