"""Errors raised by the HJ 212 codec. Every failure of the codec is one of these."""

from __future__ import annotations


class HJ212Error(ValueError):
    """A frame or data area that cannot be used. `reason` is a short, stable metric label."""

    reason = "malformed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class FramingError(HJ212Error):
    reason = "framing"


class HeaderError(HJ212Error):
    reason = "header"


class CpError(HJ212Error):
    reason = "cp"


class DecryptError(HJ212Error):
    reason = "decrypt"
