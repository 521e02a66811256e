"""SM4 decryption and encryption of HJ 212-2025 CP data areas (ECB, no padding).

The encrypted area is written ``{0xE4,0x3E,...}`` followed by the plaintext tail shorter than
one 16-byte block. Keys are per device: 16 ASCII characters or 32 hex digits.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import DecryptError

_BLOCK = 16
_CIPHER_AREA_BYTES = re.compile(rb"^\s*\{([^}]*)\}(.*)$", re.DOTALL)


def is_encrypted(cp: str) -> bool:
    """Whether a CP data area is written in the encrypted ``{0x..}`` form."""
    head = cp.lstrip()[:3]
    return head[:1] == "{" and head[1:3].lower() == "0x"


def decrypt_area(area: bytes, key: bytes) -> bytes:
    """Plaintext bytes of an encrypted CP area as sent (``{0x..,..}`` + clear tail bytes)."""
    match = _CIPHER_AREA_BYTES.match(area)
    if match is None:
        raise DecryptError("encrypted CP has no closing '}'")
    try:
        data = bytes(int(tok.strip(), 16) for tok in match.group(1).split(b",") if tok.strip())
    except ValueError as exc:
        raise DecryptError(f"encrypted CP holds a byte that is not 0xHH: {exc}") from None
    if len(data) % _BLOCK:
        raise DecryptError(f"encrypted CP is {len(data)} bytes, not whole 16-byte blocks")
    decryptor = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
    return decryptor.update(data) + decryptor.finalize() + match.group(2)


def decrypt_cp(cp: str, key: bytes) -> str:
    """Plaintext of an encrypted CP data area given as text; raises DecryptError."""
    plain = decrypt_area(cp.encode("utf-8", errors="surrogateescape"), key)
    for encoding in ("utf-8", "gbk"):
        try:
            return plain.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DecryptError("decrypted CP is not text (wrong key?)")


def encrypt_cp(plaintext: str, key: bytes) -> str:
    """The encrypted form of a CP data area: whole blocks enciphered, the short tail in clear.

    A tail that begins inside a multi-byte character is kept as surrogate escapes; encode the
    frame with ``errors="surrogateescape"`` to put its bytes on the wire.
    """
    raw = plaintext.encode("utf-8")
    whole = len(raw) - len(raw) % _BLOCK
    if whole == 0:
        return plaintext  # shorter than one block: nothing is enciphered
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    cipher = encryptor.update(raw[:whole]) + encryptor.finalize()
    body = ",".join(f"0x{b:02X}" for b in cipher)
    return "{" + body + "}" + raw[whole:].decode("utf-8", errors="surrogateescape")
