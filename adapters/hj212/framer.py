"""Tolerant HJ 212 stream framing: bytes in, whole frames out. Pure, no I/O.

A frame is ``##`` + 4 length digits + data segment + 4 hex CRC, usually followed by CR LF.
The length field is trusted when the bytes it points at look like the end of a frame;
otherwise (encrypted 2025 frames count the plaintext, devices count characters or miscount)
the frame ends at ``&&`` + 4 hex + CR LF, LF or the next ``##``. Junk between frames is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
# end of a frame whose length field cannot be trusted: "&&" + CRC + trailer or next frame
_TERMINATOR = re.compile(rb"&&[0-9A-Fa-f]{4}(?:\r\n|\n|(?=##))")
_TERMINATOR_AT_EOF = re.compile(rb"&&[0-9A-Fa-f]{4}(?:\r\n|\n|(?=##)|\r?$)")
_CRC_END = re.compile(rb"&&[0-9A-Fa-f]{4}")
_TORN = -2


@dataclass(slots=True)
class FramerStats:
    junk_bytes: int = 0
    oversize_dropped: int = 0
    length_mismatches: int = 0


@dataclass(slots=True)
class Framer:
    """Splits a byte stream into raw frames (``##`` through the CRC, trailer removed).

    `max_buffer` bounds the bytes held without a complete frame; past it the pending
    partial frame is dropped (counted in ``stats.oversize_dropped``).
    """

    max_buffer: int = 16384
    stats: FramerStats = field(default_factory=FramerStats)
    _buf: bytearray = field(default_factory=bytearray)

    @property
    def pending(self) -> int:
        """Bytes held that are not yet a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete frames now available, in order."""
        self._buf += data
        return self._drain(at_eof=False)

    def flush(self) -> list[bytes]:
        """The stream has ended: return any last frame that lacked its trailer, drop the rest."""
        frames = self._drain(at_eof=True)
        self.discard()
        return frames

    def discard(self) -> int:
        """Drop a pending partial frame (it expired); return how many bytes were dropped."""
        dropped = len(self._buf)
        self.stats.junk_bytes += dropped
        self._buf.clear()
        return dropped

    def _drain(self, *, at_eof: bool) -> list[bytes]:
        frames: list[bytes] = []
        buf = self._buf
        while True:
            lead = 0
            while lead < len(buf) and buf[lead] in b"\r\n":
                lead += 1  # the trailer of the previous frame, arrived late: not junk
            del buf[:lead]
            start = buf.find(b"##")
            if start < 0:
                keep = 1 if buf.endswith(b"#") else 0
                self._skip(len(buf) - keep)
                break
            if start:
                self._skip(start)
            if len(buf) < 6:
                break
            if not all(c in _DIGITS for c in buf[2:6]):
                self._skip(1)  # the second '#' may begin the real frame
                continue
            end, consumed = self._frame_end(int(buf[2:6]), at_eof=at_eof)
            if end == _TORN:
                self._skip(consumed)
                continue
            if end < 0:
                if len(buf) > self.max_buffer:
                    self.stats.oversize_dropped += 1
                    self._skip(2)
                    continue
                break
            frames.append(bytes(buf[:end]))
            del buf[:consumed]
        return frames

    def _frame_end(self, declared: int, *, at_eof: bool) -> tuple[int, int]:
        """For the frame at the buffer start: (end, bytes to consume), (-1, 0) to wait for
        more bytes, or (_TORN, n) when the frame is broken and n bytes are to be skipped."""
        buf = self._buf
        crc_end = 6 + declared + 4
        if (
            len(buf) >= crc_end
            and buf[crc_end - 6 : crc_end - 4] == b"&&"
            and all(c in _HEX for c in buf[crc_end - 4 : crc_end])
        ):
            return crc_end, crc_end + _trailer_length(buf, crc_end)
        pattern = _TERMINATOR_AT_EOF if at_eof else _TERMINATOR
        match = pattern.search(buf, 6)
        if match is None:
            return -1, 0
        next_start = _next_start(buf, match.start())
        if next_start >= 0:
            # another frame begins before this one's terminator: this one ended without a
            # trailer (junk may follow its CRC), or it is torn
            ends = list(_CRC_END.finditer(buf, 6, next_start))
            if not ends:
                return _TORN, next_start
            self.stats.length_mismatches += 1
            return ends[-1].end(), ends[-1].end()
        self.stats.length_mismatches += 1
        return match.start() + 6, match.end()

    def _skip(self, count: int) -> None:
        if count > 0:
            self.stats.junk_bytes += count
            del self._buf[:count]


def _next_start(buf: bytearray, before: int) -> int:
    """Position of the first plausible frame start (## + 4 digits) in buf[2:before], or -1."""
    pos = buf.find(b"##", 2, before)
    while pos >= 0:
        if _looks_like_start(buf, pos):
            return pos
        pos = buf.find(b"##", pos + 1, before)
    return -1


def _looks_like_start(buf: bytearray, pos: int) -> bool:
    return len(buf) >= pos + 6 and all(c in _DIGITS for c in buf[pos + 2 : pos + 6])


def _trailer_length(buf: bytearray, pos: int) -> int:
    if buf[pos : pos + 2] == b"\r\n":
        return 2
    if buf[pos : pos + 1] == b"\n":
        return 1
    return 0
