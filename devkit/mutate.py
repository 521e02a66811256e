"""Hostile and broken variants of a valid HJ 212 frame, for fuzzing. Pure: a seeded
`random.Random` and a frame in, bytes out.

Two families: line noise (bit flips, bytes, cuts, junk, splices: the CRC should catch most,
the other checks the rest) and frames that pass the CRC but lie (invented codes, a bad QN, a
year 9999, a code ending in a backslash, bytes that are neither UTF-8 nor GBK, a wrong PW, a
made-up MN, values that are no numbers), built again with a valid CRC.
"""

from __future__ import annotations

import random
import re

from adapters.hj212.builder import build_frame
from adapters.hj212.crc import crc_hj212

NOISE = ("bitflip", "bitflips", "byte", "truncate", "junk", "splice", "no_trailer", "huge")
LIES = (
    "invented_codes",
    "bad_qn",
    "year_9999",
    "no_datatime",
    "backslash_code",
    "not_text",
    "wrong_pw",
    "made_up_mn",
    "not_a_number",
)
KINDS = NOISE + LIES


def segment_of(frame: bytes) -> str:
    """The data segment of a frame built by `build_frame` (``##`` + 4 digits ... CRC CR LF)."""
    return frame[6:-6].decode("utf-8")


def mutate(rng: random.Random, frame: bytes, kind: str) -> bytes:
    """One variant of `frame` of the given kind (see `KINDS`)."""
    data = bytearray(frame)
    if kind == "bitflip":
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "bitflips":
        for _ in range(rng.randint(2, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "byte":
        data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == "truncate":
        return bytes(data[: rng.randrange(1, len(data))])
    if kind == "junk":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    if kind == "splice":
        cut = rng.randrange(6, len(data) - 6)
        return bytes(data[:cut] + data[cut : cut + rng.randint(1, 40)] + data[cut:])
    if kind == "no_trailer":
        return bytes(data[:-2])
    if kind == "huge":
        return b"##9999" + bytes(rng.randrange(32, 127) for _ in range(rng.randint(2000, 12000)))
    return _lie(rng, segment_of(frame), kind)


def _lie(rng: random.Random, segment: str, kind: str) -> bytes:
    if kind == "invented_codes":
        groups = ";".join(
            f"{_code(rng)}-Avg={rng.uniform(0, 999):.2f},{_code(rng)}-Flag=N"
            for _ in range(rng.randint(1, 30))
        )
        return build_frame(_with_groups(segment, groups))
    if kind == "bad_qn":
        return build_frame(
            re.sub(
                r"QN=\d+", f"QN={rng.choice(['x', '2026', '99999999999999999'])}", segment, count=1
            )
        )
    if kind == "year_9999":
        return build_frame(re.sub(r"DataTime=\d{4}", "DataTime=9999", segment, count=1))
    if kind == "no_datatime":
        return build_frame(re.sub(r"DataTime=\d+;?", "DataTime=2026x;", segment, count=1))
    if kind == "backslash_code":
        return build_frame(_with_groups(segment, "a21026\\-Avg=1.0,a21026\\-Flag=N"))
    if kind == "not_text":
        raw = segment.encode("utf-8")
        at = raw.index(b"CP=&&") + 5
        return build_frame_bytes(raw[:at] + b"\xff\xfe\x80\x81" + raw[at:])
    if kind == "wrong_pw":
        return build_frame(re.sub(r"PW=[^;]*", "PW=not-the-one", segment, count=1))
    if kind == "made_up_mn":
        return build_frame(
            re.sub(r"MN=[^;]*", f"MN=FAKE{rng.randrange(10**9):09d}", segment, count=1)
        )
    if kind == "not_a_number":
        value = rng.choice(["nan", "inf", "1e5", "1_000", " 12", "--3", "0x10"])
        return build_frame(re.sub(r"-Avg=[^,;&]*", f"-Avg={value}", segment, count=1))
    raise ValueError(f"unknown mutation {kind!r}")


def _code(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice('aw')}{rng.randrange(10**5):05d}"  # the standard's shape
    return "".join(rng.choice("abcxyz019_") for _ in range(rng.randint(1, 10)))


def _with_groups(segment: str, groups: str) -> str:
    head, _, rest = segment.partition("CP=&&")
    body = rest[:-2]  # without the closing &&
    return f"{head}CP=&&{body};{groups}&&"


def build_frame_bytes(segment: bytes) -> bytes:
    """A frame around a segment that is not valid text (the CRC is still right)."""
    return b"##%04d%s%04X\r\n" % (len(segment), segment, crc_hj212(segment))
