"""Framer: bytes in, whole frames out, whatever the device and the network did to them."""

from __future__ import annotations

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.frame import parse_frame
from adapters.hj212.framer import Framer

from .vectors import frame

F25, F26, F27 = frame(25), frame(26), frame(27)
A22 = frame("A.2-2")  # encrypted: the length field says 295, 1128 bytes are on the wire
DTU_REGISTRATION = b"REG:IMEI=869858031234567,ICCID=89860312345678901234\r\n"
MODBUS_REQUEST = b"\x01\x03\x00\x00\x00\x0a\xc5\xcd"
MODBUS_REPLY = b"\x01\x03\x04\x00\x1b\x01\x2c\xba\x2e"


def feed_all(framer: Framer, *chunks: bytes) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out


def test_three_frames_back_to_back_without_crlf_in_one_read() -> None:
    framer = Framer()
    assert framer.feed(F25 + F26 + F27) == [F25, F26, F27]
    assert framer.pending == 0
    assert framer.stats.junk_bytes == 0
    assert framer.stats.length_mismatches == 0


def test_three_frames_with_mixed_trailers_in_one_read() -> None:
    framer = Framer()
    assert framer.feed(F25 + b"\r\n" + F26 + b"\n" + F27 + b"\r\n") == [F25, F26, F27]
    assert framer.pending == 0
    assert framer.stats.junk_bytes == 0


def test_junk_between_frames_is_skipped_and_counted() -> None:
    junk = [DTU_REGISTRATION, MODBUS_REQUEST, MODBUS_REPLY]
    stream = junk[0] + F25 + b"\r\n" + junk[1] + F26 + junk[2] + F27 + b"\r\n"
    framer = Framer()
    assert framer.feed(stream) == [F25, F26, F27]
    assert framer.stats.junk_bytes == sum(map(len, junk))
    # same stream one byte at a time: CR and LF bytes that reach the start of the buffer on
    # their own (late trailers) are not junk, so only the other junk bytes count
    framer = Framer()
    assert feed_all(framer, *(stream[i : i + 1] for i in range(len(stream)))) == [F25, F26, F27]
    assert framer.stats.junk_bytes == sum(len(j) - j.count(b"\r") - j.count(b"\n") for j in junk)


def test_a_lone_hash_in_junk_does_not_swallow_the_next_frame() -> None:
    framer = Framer()
    assert framer.feed(b"AT+CSQ#\r\n" + F25 + b"\r\n#") == [F25]
    assert framer.pending == 1  # the trailing '#' may start the next "##"
    assert framer.feed(F26[1:] + b"\r\n") == [F26]


def test_junk_ending_with_hash_right_before_a_frame() -> None:
    """BUG (framer.py `_drain`, ``self._skip(2)`` when the 4 bytes after "##" are not digits):
    junk ending in '#' directly before a frame gives "###0197...": the framer skips two bytes,
    is left with "#0197..." and loses the whole frame. Skipping one byte would keep it."""
    framer = Framer()
    assert framer.feed(b"HEARTBEAT#" + F25 + b"\r\n") == [F25]


def test_encrypted_frame_whose_length_lies_split_at_every_byte() -> None:
    stream = A22 + b"\r\n" + F25 + b"\r\n"
    for cut in range(len(stream) + 1):
        framer = Framer()
        first = framer.feed(stream[:cut])
        second = framer.feed(stream[cut:])
        assert first + second == [A22, F25], cut
        # its length lies, so the frame is out only once its CR LF has arrived
        assert (A22 in first) == (cut >= len(A22) + 2), cut
        assert framer.pending == 0
    assert int(A22[2:6]) == 295 and len(A22) - 10 == 1128


def test_encrypted_frame_then_next_frame_without_trailer() -> None:
    framer = Framer()
    assert framer.feed(A22 + F25) == [A22, F25]
    assert framer.stats.length_mismatches == 1


def test_encrypted_frame_three_way_splits() -> None:
    stream = A22 + b"\n"
    for a in range(0, len(stream), 37):
        for b in range(a, len(stream), 53):
            framer = Framer()
            assert feed_all(framer, stream[:a], stream[a:b], stream[b:]) == [A22], (a, b)


def test_decrypted_frame_from_the_framer_parses() -> None:
    framer = Framer()
    (raw,) = framer.feed(MODBUS_REQUEST + A22 + b"\r\n")
    f = parse_frame(raw, key_for=lambda mn: 16 * b"0")
    assert f.encrypted and f.crc == "hj212" and f.cp.startswith("DataTime=20240520210600;")


def _big_frame(size: int) -> bytes:
    cp = "DataTime=20240101000000;" + ";".join(
        f"a{i:05d}-Rtd={i}.5,a{i:05d}-Flag=N" for i in range(size // 25)
    )
    segment = build_segment(
        [("QN", "20240101000000000"), ("ST", "31"), ("CN", "2011"), ("PW", "1"), ("MN", "BIG")],
        cp,
    )
    return build_frame(segment)


def test_frame_larger_than_max_buffer_is_dropped_and_counted() -> None:
    big = _big_frame(2000)
    assert len(big) > 1000
    good = F25 + b"\r\n"
    stream = big + good
    framer = Framer(max_buffer=512)
    out = []
    for i in range(0, len(stream), 64):
        chunk = stream[i : i + 64]
        out += framer.feed(chunk)
        assert framer.pending <= 512
    out += framer.flush()
    assert out == [F25]
    assert framer.stats.oversize_dropped == 1
    assert framer.stats.junk_bytes >= len(big) - 2  # all but the "##" the drop skipped past


def test_frame_larger_than_max_buffer_in_one_read_is_still_whole() -> None:
    """max_buffer bounds what is held *without* a complete frame; a whole frame is kept."""
    big = _big_frame(2000)
    framer = Framer(max_buffer=512)
    assert framer.feed(big + F25) == [big[:-2], F25]
    assert framer.stats.oversize_dropped == 0


def test_flush_returns_a_last_frame_without_trailer() -> None:
    # the length field lies, so only the end of the stream tells the frame is over
    framer = Framer()
    assert framer.feed(A22) == []
    assert framer.pending == len(A22)
    assert framer.flush() == [A22]
    assert framer.pending == 0
    # a bare CR at the end of the stream is a trailer too
    framer = Framer()
    assert framer.feed(frame(20) + b"\r") == []
    assert framer.flush() == [frame(20)]


def test_frame_with_a_true_length_needs_no_trailer_nor_flush() -> None:
    framer = Framer()
    assert framer.feed(F25) == [F25]
    assert framer.flush() == []


def test_flush_drops_a_partial_frame() -> None:
    framer = Framer()
    assert framer.feed(F25[:-10]) == []
    assert framer.flush() == []
    assert framer.pending == 0
    assert framer.stats.junk_bytes == len(F25) - 10
    # and the framer is usable afterwards
    assert framer.feed(F26 + b"\r\n") == [F26]


def test_discard_drops_the_pending_bytes() -> None:
    framer = Framer()
    framer.feed(F25[:50])
    assert framer.discard() == 50
    assert framer.pending == 0
    assert framer.feed(F25[50:] + F26) == [F26]


def test_torn_frame_is_abandoned_for_the_next_one() -> None:
    # a frame cut off by a device reset, then a complete frame
    framer = Framer()
    assert framer.feed(F25[:120] + F26 + b"\r\n") == [F26]
    assert framer.stats.junk_bytes == 120


def test_many_frame_starts_before_a_terminator_do_not_crash() -> None:
    """BUG (framer.py `_frame_end`, the recursive ``return self._frame_end(...)``):
    each "##dddd" seen before the first "&&XXXX<CR><LF>" adds one level of recursion, so about
    1,000 of them (6 KB, well under max_buffer=16384) raise RecursionError out of feed()."""
    stream = b"##0001" * 1200 + F25 + b"\r\n"
    framer = Framer()
    out = []
    for i in range(0, len(stream), 1024):
        out += framer.feed(stream[i : i + 1024])
    assert out == [F25]


def test_lying_length_frame_without_trailer_followed_by_junk() -> None:
    """BUG (framer.py `_frame_end`): a frame whose length field lies (here the encrypted
    A.2-2; also frame 20) and that has no CR LF is lost when junk follows it: the terminator
    search runs past the junk to the next frame's "&&XXXX\\r\\n", finds that frame's "##"
    in between and drops the first frame as "torn" (counted as junk, no stat says a frame
    was lost). Missing trailers, junk between frames and lying lengths are each tolerated."""
    for first in (A22, frame(20)):
        framer = Framer()
        assert framer.feed(first + MODBUS_REQUEST + F25 + b"\r\n") == [first, F25]
