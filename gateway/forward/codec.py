"""What forwarding needs of the HJ 212 codec, handed in by the wiring.

The gateway's core does not import the adapters (the floor plan, tests/test_layout.py): the
supervisor gives `ForwardService` a `Codec` made of `adapters/hj212`'s parser, framer and
builders (`gateway.supervisor.hj212_codec`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

KeyLookup = Callable[[str], bytes | None]
Fields = Iterable[tuple[str, str | int]]


class WireFrame(Protocol):
    """A parsed frame, as `adapters.hj212.frame.Frame` gives it (read only)."""

    @property
    def cn(self) -> str: ...
    @property
    def mn(self) -> str: ...
    @property
    def qn(self) -> str | None: ...
    @property
    def st(self) -> str | None: ...
    @property
    def pw(self) -> str | None: ...
    @property
    def flag(self) -> int | None: ...
    @property
    def rf(self) -> str | None: ...
    @property
    def header(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def cp(self) -> str: ...
    @property
    def crc(self) -> str: ...
    @property
    def encrypted(self) -> bool: ...
    @property
    def version(self) -> int: ...
    @property
    def wants_reply(self) -> bool: ...
    @property
    def length_matches(self) -> bool: ...


class Splitter(Protocol):
    """Stream to whole frames (`adapters.hj212.framer.Framer`)."""

    def feed(self, data: bytes) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Codec:
    parse: Callable[[bytes, KeyLookup | None], WireFrame]  # raises `error`
    splitter: Callable[[], Splitter]
    frame: Callable[[str], bytes]  # a data segment as a frame: ##, length, CRC, CR LF
    segment: Callable[[Fields, str], str]  # header fields in order and a plaintext CP
    encrypted_frame: Callable[[Fields, str, bytes], bytes]  # CP SM4-encrypted with the key
    cp_params: Callable[[str], dict[str, str]]  # a CP area's `key=value` parameters
    parse_time: Callable[[str], datetime]  # yyyyMMddHHmmss, naive; raises `error`
    error: type[Exception]  # what the parser raises for a frame it refuses
