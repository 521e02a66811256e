"""Vehicle plates and VINs in one comparison form, whatever wrote them. Pure, no I/O.

A gate camera, a vendor's JSON and a permit typed into the registry spell one plate as
`冀A·12345`, `冀a 12345` or `冀Ａ１２３４５`; `normalise_plate` turns all of them into `冀A12345`,
and every comparison or stored plate goes through it.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["PlateError", "compact", "normalise_plate", "valid_plate"]

MAX_PLATE_CHARS = 10  # the ledger's char(10)

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Matched after NFKC, which makes full-width space, full stop, hyphen and low line, and the
# half-width katakana and Greek middle dots, plain: white space, `.`, `_`, hyphens and dashes,
# and middle dots of every script.
_SEPARATORS = re.compile(
    r"[\s._\-\u2010-\u2015\u2212"
    r"\u00b7\u2022\u2027\u2219\u22c5\u30fb\u2e31\u2e33\u16eb\u1427\ua78f\U00010101]+"
)
_PLATE = re.compile(r"[A-Z0-9\u4e00-\u9fff]{2,10}")


class PlateError(ValueError):
    """A plate that is not 2..10 of A-Z, 0-9 and Chinese characters once normalised."""


def compact(raw: str) -> str:
    """`raw` after NFKC, without separators, latin letters upper-cased.

    NFKC runs again after the separators go, so that the result is its own compact form.
    """
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    return unicodedata.normalize("NFKC", text.translate(_ASCII_UPPER))


def normalise_plate(raw: str) -> str:
    """The comparison form of a plate: `compact`, so ` 冀a·12345 ` is `冀A12345`.

    Only a-z are upper-cased (`ß` stays `ß`, and `valid_plate` refuses it).
    """
    return compact(raw)


def _quoted(raw: str) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def valid_plate(raw: str) -> str:
    """`normalise_plate(raw)`, or `PlateError` unless it is 2..10 of A-Z, 0-9 and 汉字."""
    text = normalise_plate(raw)
    if len(text) > MAX_PLATE_CHARS:
        raise PlateError(
            f"plate has {len(text)} characters, at most {MAX_PLATE_CHARS}: {_quoted(raw)}"
        )
    if _PLATE.fullmatch(text) is None:
        raise PlateError(f"plate {_quoted(raw)} is not 2..10 letters, digits or 汉字")
    return text


# what gate systems write when they read no plate (compared in `normalise_plate` form)
_UNREAD = frozenset(
    {"无牌", "无车牌", "无号牌", "未识别", "车牌未识别", "未知", "未知车牌", "NONE", "NULL"}
)


def unreadable(raw: str) -> bool:
    """Whether a gate's plate text says no plate was read (无牌, 未识别, ...)."""
    text = normalise_plate(raw)
    return text in _UNREAD or set(text) <= {"0"} or set(text) <= {"X"}
