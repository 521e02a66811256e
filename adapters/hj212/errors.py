"""Errors raised by the HJ 212 codec. Every failure of the codec is one of these.

Messages name fields and positions, never their values: a value may be a password, or a
corrupted field swallowing one, and messages end up in log lines.
"""

from __future__ import annotations


class HJ212Error(ValueError):
    """A frame or data area that cannot be used. `reason` is a short, stable metric label;
    `mn` is the frame's MN once the header has been read (None before)."""

    reason = "malformed"
    mn: str | None = None

    def __init__(self, message: str, *, reason: str | None = None, mn: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if mn is not None:
            self.mn = mn


class FramingError(HJ212Error):
    reason = "framing"


class HeaderError(HJ212Error):
    reason = "header"


class CpError(HJ212Error):
    reason = "cp"


class DecryptError(HJ212Error):
    reason = "decrypt"


class ValueShapeError(HJ212Error):
    """A data upload whose values, flags or time cannot be stored as sent."""

    reason = "bad_value"
