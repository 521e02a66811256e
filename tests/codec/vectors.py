"""Shared test data for the HJ 212 codec tests: the golden frames and independent references.

The golden folders under ``tests/golden/hj212`` hold the real frames (``input.txt``) and the
HJ 212-2017 Appendix C data segments (``segment.txt``); see ``test_golden.py``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "hj212"
KEY = 16 * b"0"  # the SM4 key of the HJ 212-2025 Appendix A.2 examples


@cache
def frame_cases() -> dict[str, Path]:
    """Golden folders holding a real frame, by folder name."""
    return {p.parent.name: p.parent for p in sorted(GOLDEN.glob("*/input.txt"))}


def segment_cases() -> dict[str, Path]:
    """Golden folders holding an unframed Appendix C data segment, by folder name."""
    return {p.parent.name: p.parent for p in sorted(GOLDEN.glob("*/segment.txt"))}


def expected(folder: Path) -> dict[str, Any]:
    """A fresh copy of a case's expected.json (callers may mutate it)."""
    data: dict[str, Any] = json.loads((folder / "expected.json").read_text("utf-8"))
    return data


@cache
def frame(vector_id: int | str) -> bytes:
    """A real frame (no CR LF trailer) by its id among the published ones (1, 25, "A.2-2", ...)."""
    for folder in frame_cases().values():
        if expected(folder)["vector"]["id"] == vector_id:
            return (folder / "input.txt").read_bytes()
    raise KeyError(vector_id)


def all_frames() -> dict[str, bytes]:
    return {name: (folder / "input.txt").read_bytes() for name, folder in frame_cases().items()}


def ref_crc_hj212(data: bytes) -> int:
    """The standard's CRC written bit by bit as the standard describes it (reference only)."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            out = reg & 1
            reg >>= 1
            if out:
                reg ^= 0xA001
    return reg


def ref_crc_modbus(data: bytes) -> int:
    """CRC-16/MODBUS written bit by bit (reference only)."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            out = reg & 1
            reg >>= 1
            if out:
                reg ^= 0xA001
    return reg
