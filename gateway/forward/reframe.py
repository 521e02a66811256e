"""Frames for an upstream platform from the frames devices sent (pure, no I/O).

What goes up is what the device sent: the same QN, ST, CN, MN, PNUM/PNO, DataTime, values and
flags. A frame is sent byte for byte when the platform would read it as it is: same version,
same password, same encryption (the platform's key is the device's, or neither encrypts), the
reply bit as the platform's `ack` wants, the standard CRC and an exact length field, and not a
HJ/T 212-2005 logger's (whose factor codes go up as their 2017 codes). Otherwise
it is built again from its fields in their order: PW the platform's password for the MN, Flag
the platform's version bits with the reply bit set when the platform acknowledges (the split
bit kept), `RF=1` for history answers to 2025 platforms, the CP area decrypted with the
device's key and, for a 2025 platform with a key, encrypted with that key; CRC and length
recomputed. The codec (`codec.py`) is `adapters/hj212`'s, handed in by the wiring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from gateway.vocabulary import canonical

from .codec import Codec, WireFrame

_TRAILER = b"\r\n"
HISTORY_COMMANDS = frozenset({"2051", "2061", "2031", "2041"})


@dataclass(frozen=True, slots=True)
class Upstream:
    """How one platform wants a given MN's frames."""

    version: int  # Flag >> 2: 1 (2017) or 2 (2025)
    password: str | None  # None: the device's own
    key: bytes | None  # 2025: the platform's SM4 key for the MN
    ack: bool  # the platform answers 9014: the reply bit is set
    from_2005: bool = False  # the device speaks HJ/T 212-2005: its codes go up as 2017 codes


def flag_for(frame: WireFrame, up: Upstream) -> int:
    """The Flag upstream: the platform's version, the frame's split bit, the reply bit."""
    return up.version << 2 | ((frame.flag or 0) & 0b10) | (1 if up.ack else 0)


def as_is(frame: WireFrame, up: Upstream, device_key: bytes | None) -> bool:
    """Whether the frame's bytes go up unchanged."""
    same_key = up.key == device_key if frame.encrypted else up.key is None
    return (
        not up.from_2005
        and frame.flag is not None
        and frame.flag == flag_for(frame, up)
        and (up.password is None or frame.pw == up.password)
        and same_key
        and frame.crc == "hj212"
        and frame.length_matches
    )


def reframe(
    codec: Codec, raw: bytes, device_key: bytes | None, up: Upstream, *, backfill: bool = False
) -> bytes:
    """The frame (with its CR LF) to send upstream for `raw`, as the device sent it (its SM4
    key `device_key`); `backfill` marks a history answer (`RF=1` for 2025). The codec's error
    when `raw` does not parse (an archived accepted frame always does)."""
    frame = codec.parse(raw, lambda _mn: device_key)
    mark = backfill and up.version == 2
    if as_is(frame, up, device_key) and not mark:
        return raw + _TRAILER
    return rebuild(codec, frame, up, backfill=mark)


def rebuild(codec: Codec, frame: WireFrame, up: Upstream, *, backfill: bool = False) -> bytes:
    """`frame` built again for `up` (see the module's text); `backfill`: with `RF=1`."""
    fields: list[tuple[str, str | int]] = []
    names: set[str] = set()
    for key, value in frame.header:
        name = key.upper()
        names.add(name)
        if name == "PW" and up.password is not None:
            value = up.password
        elif name == "FLAG":
            value = str(flag_for(frame, up))
        elif name == "RF" and backfill:
            value = "1"
        fields.append((key, value))
    if "PW" not in names and up.password is not None:
        fields.append(("PW", up.password))
    if "FLAG" not in names:
        fields.append(("Flag", flag_for(frame, up)))
    if backfill and "RF" not in names:
        fields.append(("RF", "1"))
    cp = codes_2017(frame.cp) if up.from_2005 else frame.cp
    if up.version == 2 and up.key is not None:
        return codec.encrypted_frame(fields, cp, up.key)
    return codec.frame(codec.segment(fields, cp))


_FIELD = re.compile(r"(^|[;,])([A-Za-z0-9]+)-")


def codes_2017(cp: str) -> str:
    """A 2005 logger's CP area with its factor codes (`02-Avg`, `B02-Cou`) written as 2017
    codes (`a21026-Avg`, `a00000-Cou`); values, flags and DataTime unchanged."""
    return _FIELD.sub(lambda m: f"{m.group(1)}{canonical(m.group(2), '2005')}-", cp)


def new_qn(now: datetime) -> str:
    """A QN (yyyyMMddHHmmssSSS) of `now`."""
    return now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"


def heartbeat(codec: Codec, mn: str, up: Upstream, qn: str) -> bytes:
    """A 9015 heartbeat for `mn` (no reply asked)."""
    fields: list[tuple[str, str | int]] = [("QN", qn), ("ST", "91"), ("CN", "9015")]
    if up.password is not None:
        fields.append(("PW", up.password))
    fields += [("MN", mn), ("Flag", up.version << 2)]
    return codec.frame(codec.segment(fields, ""))


def answer(codec: Codec, request: WireFrame, cn: str, cp: str) -> bytes:
    """9011 (`QnRtn=..`) or 9012 (`ExeRtn=..`) to a platform's request, as a logger sends
    them: the request's QN, PW and MN, `ST=91`, its version bits."""
    fields: list[tuple[str, str | int]] = [("QN", request.qn or ""), ("ST", "91"), ("CN", cn)]
    fields += [("PW", request.pw or ""), ("MN", request.mn), ("Flag", request.version << 2)]
    return codec.frame(codec.segment(fields, cp))


def time_upload(codec: Codec, request: WireFrame, now: datetime, up: Upstream) -> bytes:
    """The 1011 upload answering the platform's 1011 (the logger's time): `SystemTime`, the
    gateway's clock as local time of the device (`now` aware in its zone)."""
    fields: list[tuple[str, str | int]] = [("QN", request.qn or ""), ("ST", request.st or "32")]
    fields += [("CN", "1011"), ("PW", request.pw or up.password or "")]
    fields += [("MN", request.mn), ("Flag", up.version << 2)]
    cp = f"SystemTime={now:%Y%m%d%H%M%S}"
    return codec.frame(codec.segment(fields, cp))
