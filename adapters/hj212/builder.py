"""Builders of HJ 212 frames the platform sends: replies, time answers, history requests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from . import sm4
from .cp import format_hj212_time
from .crc import crc_hj212, crc_modbus
from .frame import Frame

HISTORY_COMMANDS = frozenset({"2051", "2061", "2031", "2041"})


def build_frame(segment: str, *, crc: str = "hj212", declared_length: int | None = None) -> bytes:
    """Frame a data segment: ``##`` + length + segment + CRC + CR LF.

    `crc` may be ``modbus`` or ``modbus_swapped`` to imitate devices that send those.
    """
    data = segment.encode("utf-8")
    value = crc_hj212(data) if crc == "hj212" else crc_modbus(data)
    if crc == "modbus_swapped":
        value = (value & 0xFF) << 8 | value >> 8
    length = len(data) if declared_length is None else declared_length
    return b"##%04d%s%04X\r\n" % (length, data, value)


def build_segment(fields: Iterable[tuple[str, str | int]], cp: str = "") -> str:
    """A data segment from header fields in order and a plaintext CP area."""
    head = "".join(f"{k}={v};" for k, v in fields)
    return f"{head}CP=&&{cp}&&"


def build_encrypted_frame(
    fields: Iterable[tuple[str, str | int]], cp: str, key: bytes, *, wire_length: bool = False
) -> bytes:
    """An HJ 212-2025 frame with its CP SM4-encrypted; CRC and (by default) length of plaintext."""
    head = list(fields)
    plain = build_segment(head, cp).encode("utf-8")
    wire = build_segment(head, sm4.encrypt_cp(cp, key)).encode("utf-8", "surrogateescape")
    length = len(wire) if wire_length else len(plain)
    return b"##%04d%s%04X\r\n" % (length, wire, crc_hj212(plain))


def reply_flag(frame: Frame) -> int:
    """Flag of a platform reply: the device's version bits, no A bit."""
    return frame.version << 2


def build_reply(frame: Frame, cn: str, cp: str = "") -> bytes:
    """A reply with the request's QN, ST=91, the same PW and MN."""
    fields: list[tuple[str, str | int]] = []
    if frame.qn is not None:
        fields.append(("QN", frame.qn))
    fields += [("ST", "91"), ("CN", cn)]
    if frame.pw is not None:
        fields.append(("PW", frame.pw))
    fields += [("MN", frame.mn), ("Flag", reply_flag(frame))]
    return build_frame(build_segment(fields, cp))


def data_ack(frame: Frame) -> bytes:
    """9014, the data answer to an upload that asked for one."""
    return build_reply(frame, "9014")


def notice_ack(frame: Frame) -> bytes:
    """9013, the notice answer (to 1013 time requests and 9015 heartbeats)."""
    return build_reply(frame, "9013")


def new_qn(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"


def history_request(
    *,
    mn: str,
    pw: str,
    cn: str,
    begin: datetime,
    end: datetime,
    qn: str,
    st: str = "32",
    version: int = 1,
    separator: str = ";",
) -> bytes:
    """A back-fill request (2051 / 2061 / 2031 / 2041) for local times [begin, end]."""
    if cn not in HISTORY_COMMANDS:
        raise ValueError(f"CN {cn} is not a history command")
    cp = f"BeginTime={format_hj212_time(begin)}{separator}EndTime={format_hj212_time(end)}"
    fields: list[tuple[str, str | int]] = [
        ("QN", qn),
        ("ST", st),
        ("CN", cn),
        ("PW", pw),
        ("MN", mn),
        ("Flag", version << 2 | 1),
    ]
    return build_frame(build_segment(fields, cp))


def request_answer(request: Frame, *, qn_rtn: int = 1) -> bytes:
    """9011 a device sends for a platform request (used by simulators and tests)."""
    return _device_answer(request, "9011", f"QnRtn={qn_rtn}")


def execution_answer(request: Frame, *, exe_rtn: int = 1) -> bytes:
    """9012 a device sends when it finished a platform request."""
    return _device_answer(request, "9012", f"ExeRtn={exe_rtn}")


def _device_answer(request: Frame, cn: str, cp: str) -> bytes:
    fields: list[tuple[str, str | int]] = [("QN", request.qn or ""), ("ST", "91"), ("CN", cn)]
    fields += [("PW", request.pw or ""), ("MN", request.mn), ("Flag", reply_flag(request))]
    return build_frame(build_segment(fields, cp))
