"""The one error of the MQTT payload code. Every rejected payload raises it."""

from __future__ import annotations

from typing import Literal

Reason = Literal["size", "json", "schema", "value", "internal"]
"""Metric label: `size` too large, `json` not UTF-8 JSON, `schema` wrong shape or type,
`value` well-formed but impossible or outside the vocabulary."""


class PayloadError(ValueError):
    """A payload that cannot be stored; `reason` is a stable metric label, the message is prose."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"PayloadError({self.reason!r}, {self.message!r})"


def shown(value: object) -> str:
    """A value as quoted in an error message, cut to 40 characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # integers over 4300 digits, deep nesting
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."
