"""The translate-and-fold HJ 212 CRC equals the standard's byte-by-byte loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.hj212.crc import crc_hj212, crc_hj212_reference


@settings(max_examples=500)
@given(st.binary(min_size=0, max_size=3000))
def test_fast_crc_equals_reference(data: bytes) -> None:
    assert crc_hj212(data) == crc_hj212_reference(data)


def test_fast_crc_on_every_length_around_the_switch_and_the_period() -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(400))
    for n in range(len(data)):
        assert crc_hj212(data[:n]) == crc_hj212_reference(data[:n]), n


def test_appendix_a_example() -> None:
    segment = (
        b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
        b"Flag=5;CP=&&RtdInterval=30&&"
    )
    assert crc_hj212(segment) == 0x1C80 == crc_hj212_reference(segment)
