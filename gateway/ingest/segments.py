"""The spool's files on disk: segments of checksummed records and the cursor. Pure byte
layouts and the scans of them; the spool and `backup` do the I/O.

``seg-<n>.log`` files hold records ``[u32 length][u32 crc32][payload]``; the ``cursor`` file
holds the segment and byte offset in its file of the first record not yet delivered. A segment
starts with a 16-byte header: `SEGMENT_MAGIC`, the format version (u32) and the crc32 of those
12 bytes. Segments of the first release have no header (records from byte 0) and are still read
(and appended to when one is the newest); a segment of a format newer than `FORMAT_VERSION`
stops the spool's `open` with `StateError`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from gateway.migrations import StateError, newer_than_code

RECORD_HEADER = struct.Struct("<II")  # before each record: length, crc32 of the payload
SEGMENT_MAGIC = b"\x89PGWSEG\n"
FORMAT_VERSION = 1
SEGMENT_HEADER_STRUCT = struct.Struct("<8sII")  # magic, format version, crc32 of the first 12 bytes
SEGMENT_HEADER = SEGMENT_HEADER_STRUCT.pack(
    SEGMENT_MAGIC, FORMAT_VERSION, zlib.crc32(SEGMENT_MAGIC + FORMAT_VERSION.to_bytes(4, "little"))
)
SEGMENT_HEADER_SIZE = SEGMENT_HEADER_STRUCT.size


@dataclass(frozen=True, slots=True, order=True)
class Position:
    segment: int
    offset: int


def segment_name(segment: int) -> str:
    return f"seg-{segment:08d}.log"


def read_cursor(path: Path) -> Position | None:
    """The position a ``cursor`` file holds; None when it is missing or unreadable."""
    try:
        seg_text, _, off_text = path.read_text().strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    if seg_text.isdigit() and off_text.isdigit():
        return Position(int(seg_text), int(off_text))
    return None


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """What a segment file holds."""

    start: int | None  # offset of its first record; None: no whole header, so no record
    end: int  # offset after its last whole, checksummed record
    records: int  # whole records counted


def segment_start(path: Path, head: bytes) -> int | None:
    """Offset of the first record in a segment whose first 16 (or fewer) bytes are `head`:
    0 for a segment without header (the first release's), the header's size for format 1,
    None for a file too short to hold a header or a record. `StateError` for a segment of a
    newer format or a damaged header."""
    if len(head) < len(SEGMENT_MAGIC) and SEGMENT_MAGIC.startswith(head):
        return None
    if not head.startswith(SEGMENT_MAGIC):
        return 0
    if len(head) < SEGMENT_HEADER_SIZE:
        return None
    _, version, crc = SEGMENT_HEADER_STRUCT.unpack_from(head)
    if zlib.crc32(head[:12]) != crc or version == 0:
        raise StateError(f"{path}: damaged spool segment header {head.hex()}")
    if version > FORMAT_VERSION:
        raise newer_than_code(path, "spool segment", version, FORMAT_VERSION)
    return SEGMENT_HEADER_SIZE


def scan_segment(path: Path, data: bytes, count_from: int = 0) -> SegmentScan:
    """Find the whole, checksummed records of a segment file's bytes `data`, counting those
    at or after offset `count_from`."""
    start = segment_start(path, data[:SEGMENT_HEADER_SIZE])
    if start is None:
        return SegmentScan(None, 0, 0)
    pos, records = start, 0
    while pos + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, pos)
        end = pos + RECORD_HEADER.size + length
        if end > len(data) or zlib.crc32(data[pos + RECORD_HEADER.size : end]) != crc:
            break
        records += pos >= count_from
        pos = end
    return SegmentScan(start, pos, records)
