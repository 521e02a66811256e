"""One archived frame as a line of text, and the hash chain that links the lines (pure).

A record is one line: ``HASH PREV CONTENT\\n``, where CONTENT is a JSON object on one line
(ASCII only, so it holds no newline and no byte that changes meaning between encodings), PREV
the hash of the record before it (the previous day's last one for a day's first, or `GENESIS`)
and HASH = SHA-256 of the 64 ASCII hex digits of PREV followed by the bytes of CONTENT, as 64
lower-case hex digits. Checked by hand:
``printf '%s%s' "$PREV" "$CONTENT" | sha256sum``.

CONTENT's keys, in this order: `t` (receipt time, UTC, ISO 8601 with offset, microseconds),
`peer` (`ip:port`, or `mqtt:<topic>`), `conn` (the TCP connection's serial since start, 0 for
MQTT), `mn` (as read from the frame, empty when its header could not be read), `crc` (the CRC
variant it matched, empty when none), `verdict` (`accepted`, or the refusal reason counted in
`frames_rejected_total`), `data_time` (an accepted upload's DataTime in UTC, else null) and
`raw` (the frame's bytes as received, base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

GENESIS = "0" * 64  # PREV of the very first record
BEIJING = ZoneInfo("Asia/Shanghai")
DAY_SUFFIX = ".frames"
MAX_MN = 100  # characters of an MN kept (a refused frame's may be anything)
_HEX = re.compile(rb"^[0-9a-f]{64}$")


class RecordError(ValueError):
    """A line that is not an archive record."""


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """What the archive keeps of one received frame."""

    received_at: datetime  # aware
    peer: str
    conn: int
    mn: str
    crc: str
    verdict: str
    raw: bytes
    data_time: datetime | None = None  # aware

    @property
    def day(self) -> date:
        """The Beijing day whose file holds the record."""
        return self.received_at.astimezone(BEIJING).date()


@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """A record as read back: its line's three parts and what the content says."""

    hash: str
    prev: str
    content: bytes
    record: FrameRecord


def content(record: FrameRecord) -> bytes:
    """The record's CONTENT: canonical, ASCII-only JSON on one line."""
    data_time = record.data_time.astimezone(UTC).isoformat() if record.data_time else None
    obj = {
        "t": record.received_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "peer": record.peer,
        "conn": record.conn,
        "mn": record.mn[:MAX_MN],
        "crc": record.crc,
        "verdict": record.verdict,
        "data_time": data_time,
        "raw": base64.b64encode(record.raw).decode("ascii"),
    }
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def chain_hash(prev: str, body: bytes) -> str:
    """SHA-256 of PREV's hex digits followed by CONTENT."""
    return hashlib.sha256(prev.encode("ascii") + body).hexdigest()


def encode(record: FrameRecord, prev: str) -> tuple[bytes, str]:
    """The record's line (with its newline) chained after `prev`, and its hash."""
    body = content(record)
    digest = chain_hash(prev, body)
    return f"{digest} {prev} ".encode("ascii") + body + b"\n", digest


def split_line(line: bytes) -> tuple[str, str, bytes]:
    """HASH, PREV and CONTENT of a line (without its newline); RecordError if not shaped so."""
    parts = line.split(b" ", 2)
    if len(parts) != 3 or not _HEX.match(parts[0]) or not _HEX.match(parts[1]):
        raise RecordError("not HASH PREV CONTENT")
    return parts[0].decode("ascii"), parts[1].decode("ascii"), parts[2]


def decode(line: bytes) -> ArchivedRecord:
    """Read a line (with or without its newline) back; RecordError when it is not a record.
    The hash is not checked here (see `chain`)."""
    digest, prev, body = split_line(line.rstrip(b"\n"))
    try:
        obj = json.loads(body)
        record = FrameRecord(
            received_at=_time(obj["t"]),
            peer=str(obj["peer"]),
            conn=int(obj["conn"]),
            mn=str(obj["mn"]),
            crc=str(obj["crc"]),
            verdict=str(obj["verdict"]),
            raw=base64.b64decode(obj["raw"], validate=True),
            data_time=_time(obj["data_time"]) if obj["data_time"] is not None else None,
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise RecordError(f"content is not a record: {exc}") from None
    return ArchivedRecord(digest, prev, body, record)


def _time(text: object) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError("time without offset")
    return moment


def day_name(day: date) -> str:
    return day.isoformat() + DAY_SUFFIX


def parse_day_name(name: str) -> date | None:
    """The day of a day file's name, None for any other name."""
    if not name.endswith(DAY_SUFFIX):
        return None
    try:
        day = date.fromisoformat(name[: -len(DAY_SUFFIX)])
    except ValueError:
        return None
    return day if day_name(day) == name else None
