"""CRC checks of HJ 212: the standard's "ANSI CRC16" and the CRC-16/MODBUS variants devices send.

The standard CRC keeps only 8 bits of state between bytes (the register is replaced by
``(reg >> 8) ^ byte`` before the shifts): with H the high byte of the CRC table, the state
after a byte is ``s' = H[s ^ b] = H[s] ^ H[b]``. H is linear over GF(2) and H^8 is the
identity, so the state after m bytes is ``H^m(s0)`` XOR, for each byte i, ``H^((m-i) % 8)``
of that byte: eight `bytes.translate` calls and one XOR fold, done in C, instead of a Python
loop over every byte. `crc_hj212_reference` is the standard's loop, kept for the tests.
"""

from __future__ import annotations

from typing import Literal

CrcVariant = Literal["hj212", "modbus", "modbus_swapped", "none"]


def _table() -> tuple[int, ...]:
    out = []
    for value in range(256):
        reg = value
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
        out.append(reg)
    return tuple(out)


_TABLE = _table()
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_HIGH = bytes(v >> 8 for v in _TABLE)


def _powers() -> tuple[bytes, ...]:
    """Translation tables of H^0 .. H^7."""
    tables = [bytes(range(256))]
    for _ in range(7):
        tables.append(tables[-1].translate(_HIGH))
    return tuple(tables)


_POWERS = _powers()
_SHORT = 128  # below this many bytes the plain loop is faster


def _xor_fold(data: bytes) -> int:
    """XOR of all bytes of `data`."""
    value = int.from_bytes(data, "little")
    width = len(data)
    while width > 1:
        half = (width + 1) // 2
        value = (value >> (8 * half)) ^ (value & ((1 << (8 * half)) - 1))
        width = half
    return value


def crc_hj212(data: bytes) -> int:
    """The HJ 212 CRC of `data` (the data segment, from the first header byte through ``&&``)."""
    last = len(data) - 1
    if last < _SHORT:
        return crc_hj212_reference(data)
    state = _POWERS[last % 8][0xFF]  # H^m of the initial state (high byte of 0xFFFF)
    state ^= _xor_fold(
        b"".join(data[(last - r) % 8 : last : 8].translate(_POWERS[r]) for r in range(8))
    )
    return _TABLE[state ^ data[last]]


def crc_hj212_reference(data: bytes) -> int:
    """The HJ 212 CRC computed byte by byte, as the standard's Appendix A does."""
    if not data:
        return 0xFFFF
    state = 0xFF  # high byte of the initial register 0xFFFF
    high = _HIGH
    for b in data[:-1]:
        state = high[state ^ b]
    return _TABLE[state ^ data[-1]]


def crc_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (init 0xFFFF, reflected 0xA001), as an integer."""
    reg = 0xFFFF
    table = _TABLE
    for b in data:
        reg = (reg >> 8) ^ table[(reg ^ b) & 0xFF]
    return reg


def format_crc(value: int) -> str:
    return f"{value:04X}"


def crc_variant(data: bytes, sent: str) -> CrcVariant:
    """Which CRC variant, if any, produced the 4 hex digits `sent` for `data`.

    The digits must be written in one case (``1DC0`` or ``1dc0``): a device prints its CRC
    with one format, so ``1dC0`` is a corrupted field, however its value compares.
    """
    if len(sent) != 4 or not all(c in _HEX_DIGITS for c in sent):
        return "none"
    if sent != sent.upper() and sent != sent.lower():
        return "none"
    received = int(sent, 16)
    if received == crc_hj212(data):
        return "hj212"
    modbus = crc_modbus(data)
    if received == modbus:
        return "modbus"
    if received == ((modbus & 0xFF) << 8 | modbus >> 8):
        return "modbus_swapped"
    return "none"


def accepts(policy: str, variant: CrcVariant) -> bool:
    """Whether a CRC policy (``strict`` or ``tolerant``) accepts a frame whose CRC is `variant`."""
    if variant == "hj212":
        return True
    return policy == "tolerant" and variant in ("modbus", "modbus_swapped")
