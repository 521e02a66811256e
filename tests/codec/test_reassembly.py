"""Reassembly of split uploads (PNUM / PNO), keyed on (MN, CN, DataTime, PNUM)."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.cp import CpData, parse_cp
from adapters.hj212.frame import Frame, parse_frame
from adapters.hj212.reassembly import Reassembler

from .vectors import expected, segment_cases

SEGMENTS = segment_cases()
MN = "010000A8900016F000169DC0"
PART_1 = (SEGMENTS["C-2061-split-pnum2-pno1"] / "segment.txt").read_text("utf-8")
# the second half of the Appendix C hour upload (w01018), as PNO=2
PART_2 = (
    "QN=20160801085857535;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=7;"
    "PNUM=2;PNO=2;CP=&&DataTime=20160801080000;w01018-Cou=63.0,w01018-Min=40.1,"
    "w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&"
)


def part(segment: str) -> tuple[Frame, CpData]:
    f = parse_frame(build_frame(segment)[:-2])
    return f, parse_cp(f.cp)


def sub_packet(
    pno: int,
    pnum: int = 3,
    *,
    mn: str = MN,
    cn: str = "2061",
    data_time: str = "20160801080000",
    code: str | None = None,
) -> tuple[Frame, CpData]:
    code = code or f"w0{pno:04d}"
    fields: list[tuple[str, str | int]] = [
        ("QN", f"2016080108585700{pno}"),
        ("ST", "32"),
        ("CN", cn),
        ("PW", "123456"),
        ("MN", mn),
        ("Flag", 7),
        ("PNUM", pnum),
        ("PNO", min(max(pno, 1), pnum)),  # parse_frame refuses a PNO outside 1..PNUM
    ]
    f, cp = part(build_segment(fields, f"DataTime={data_time};{code}-Avg={pno}.5,{code}-Flag=N"))
    return dataclasses.replace(f, pno=pno), cp


def test_appendix_c_halves_merge_into_the_whole_hour() -> None:
    whole = expected(SEGMENTS["C-2061-hour"])["cp"]
    r: Reassembler[None] = Reassembler()
    assert r.add(*part(PART_1), now=0.0, context=None) is None
    assert len(r) == 1
    merged = r.add(*part(PART_2), now=1.0, context=None)
    assert merged is not None
    assert merged.params == whole["params"]
    assert merged.items == whole["items"]
    assert len(r) == 0


def test_order_of_arrival_does_not_matter() -> None:
    r: Reassembler[None] = Reassembler()
    assert r.add(*sub_packet(3), now=0, context=None) is None
    assert r.add(*sub_packet(1), now=0, context=None) is None
    merged = r.add(*sub_packet(2), now=0, context=None)
    assert merged is not None
    assert list(merged.items) == ["w00001", "w00002", "w00003"]  # merged in PNO order
    assert merged.items["w00002"] == {"Avg": "2.5", "Flag": "N"}


def test_unsplit_and_single_part_uploads_pass_through() -> None:
    r: Reassembler[None] = Reassembler()
    f, cp = part((SEGMENTS["C-2061-hour"] / "segment.txt").read_text("utf-8"))
    assert f.pnum is None
    assert r.add(f, cp, now=0, context=None) is cp
    single = sub_packet(1, pnum=1)
    assert r.add(*single, now=0, context=None) is single[1]
    assert len(r) == 0


def test_a_repeated_part_does_not_complete_the_upload() -> None:
    r: Reassembler[None] = Reassembler()
    assert r.add(*sub_packet(1, pnum=2), now=0, context=None) is None
    assert r.add(*sub_packet(1, pnum=2), now=1, context=None) is None  # a resend of part 1
    assert len(r) == 1
    assert r.add(*sub_packet(2, pnum=2), now=2, context=None) is not None


@pytest.mark.parametrize(
    "other",
    [
        {"mn": "OTHERMN"},
        {"cn": "2051"},
        {"data_time": "20160801090000"},
    ],
)
def test_parts_of_different_uploads_do_not_mix(other: dict[str, str]) -> None:
    r: Reassembler[None] = Reassembler()
    assert r.add(*sub_packet(1, pnum=2), now=0, context=None) is None
    assert r.add(*sub_packet(2, pnum=2, **other), now=0, context=None) is None
    assert len(r) == 2


def test_different_pnum_is_a_different_upload() -> None:
    r: Reassembler[None] = Reassembler()
    assert r.add(*sub_packet(1, pnum=2), now=0, context=None) is None
    assert r.add(*sub_packet(2, pnum=3), now=0, context=None) is None
    assert len(r) == 2


def test_oldest_upload_is_evicted_when_full() -> None:
    r: Reassembler[None] = Reassembler(max_pending=2)
    r.add(*sub_packet(1, data_time="20160801080000"), now=0, context=None)
    r.add(*sub_packet(1, data_time="20160801090000"), now=1, context=None)
    r.add(*sub_packet(1, data_time="20160801100000"), now=2, context=None)
    assert len(r) == 2
    assert r.expired == 1
    # the evicted (oldest) upload starts again from scratch; the others still complete
    assert r.add(*sub_packet(2, data_time="20160801090000"), now=3, context=None) is None
    assert r.add(*sub_packet(3, data_time="20160801090000"), now=3, context=None) is not None


def test_expire_drops_uploads_older_than_the_ttl() -> None:
    r: Reassembler[None] = Reassembler(ttl_s=600)
    r.add(*sub_packet(1, data_time="20160801080000"), now=0, context=None)
    r.add(*sub_packet(1, data_time="20160801090000"), now=500, context=None)
    assert r.expire(now=599) == []
    assert [u.frame.pno for u in r.expire(now=600)] == [1]
    assert len(r) == 1
    assert r.expired == 1
    assert len(r.expire(now=1100)) == 1
    assert len(r) == 0
    assert r.expired == 2


def test_ttl_counts_from_the_first_part() -> None:
    r: Reassembler[None] = Reassembler(ttl_s=600)
    r.add(*sub_packet(1), now=0, context=None)
    r.add(*sub_packet(2), now=590, context=None)  # a later part does not refresh the upload
    assert len(r.expire(now=600)) == 1
    assert r.add(*sub_packet(3), now=601, context=None) is None


def test_part_numbers_outside_1_to_pnum_do_not_complete_an_upload() -> None:
    """BUG (reassembly.py `add`, ``if len(entry.parts) < frame.pnum``): completion counts the
    distinct PNO values received, not PNO 1..PNUM, so PNO 1 and a stray PNO 5 (or 0) of a
    PNUM=2 upload are returned as the complete upload while part 2 is missing."""
    r: Reassembler[None] = Reassembler()
    assert r.add(*sub_packet(1, pnum=2), now=0, context=None) is None
    assert r.add(*sub_packet(5, pnum=2), now=0, context=None) is None
