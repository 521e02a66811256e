"""SM4 (GB/T 32907) encryption of HJ 212-2025 CP areas."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from adapters.hj212 import sm4
from adapters.hj212.builder import build_encrypted_frame
from adapters.hj212.crc import crc_hj212
from adapters.hj212.errors import DecryptError, HeaderError, HJ212Error
from adapters.hj212.frame import parse_frame
from gateway.registry import parse_key

from .vectors import KEY, frame

GBT_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
GBT_PLAIN = bytes.fromhex("0123456789abcdeffedcba9876543210")
GBT_CIPHER = bytes.fromhex("681edf34d206965e86b3e94f536e4246")


def cp_area(raw: bytes) -> str:
    """The text between ``CP=&&`` and the closing ``&&`` of a raw frame."""
    text = raw.decode()
    return text[text.index("CP=&&") + 5 : text.rindex("&&")]


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    text = raw.decode()
    head = text[6 : text.index("CP=&&")]
    return [(k, v) for k, _, v in (p.partition("=") for p in head.split(";") if p)]


def test_gbt_32907_standard_vector() -> None:
    enc = Cipher(algorithms.SM4(GBT_KEY), modes.ECB()).encryptor()
    assert enc.update(GBT_PLAIN) + enc.finalize() == GBT_CIPHER
    dec = Cipher(algorithms.SM4(GBT_KEY), modes.ECB()).decryptor()
    assert dec.update(GBT_CIPHER) + dec.finalize() == GBT_PLAIN
    # the key as a device registry writes it: 32 hex digits
    assert parse_key("0123456789abcdeffedcba9876543210") == GBT_KEY


def test_gbt_32907_vector_through_decrypt_cp() -> None:
    # the standard's plaintext is not text, so decrypt_cp must refuse it with its own error
    area = "{" + ",".join(f"0x{b:02x}" for b in GBT_CIPHER) + "}"
    with pytest.raises(DecryptError):
        sm4.decrypt_cp(area, GBT_KEY)


@pytest.mark.parametrize(("cipher", "plain"), [("A.2-2", "A.2-1"), ("A.2-4", "A.2-3")])
def test_appendix_a2_decrypts_exactly(cipher: str, plain: str) -> None:
    assert sm4.decrypt_cp(cp_area(frame(cipher)), KEY) == cp_area(frame(plain))


@pytest.mark.parametrize(("cipher", "plain"), [("A.2-2", "A.2-1"), ("A.2-4", "A.2-3")])
def test_encrypt_cp_reproduces_appendix_a2(cipher: str, plain: str) -> None:
    assert sm4.encrypt_cp(cp_area(frame(plain)), KEY) == cp_area(frame(cipher))


@pytest.mark.parametrize(("cipher", "plain"), [("A.2-2", "A.2-1"), ("A.2-4", "A.2-3")])
def test_build_encrypted_frame_reproduces_appendix_a2(cipher: str, plain: str) -> None:
    built = build_encrypted_frame(header_fields(frame(plain)), cp_area(frame(plain)), KEY)
    assert built == frame(cipher) + b"\r\n"
    wire = build_encrypted_frame(
        header_fields(frame(plain)), cp_area(frame(plain)), KEY, wire_length=True
    )
    assert wire[2:6] == b"%04d" % (len(frame(cipher)) - 10)


def test_a2_4_keeps_its_partial_block_in_clear() -> None:
    area = cp_area(frame("A.2-4"))
    assert area.endswith("}g=N")
    plain = cp_area(frame("A.2-3")).encode()
    assert len(plain) % 16 == 3
    assert area.count("0x") == len(plain) - 3


def test_parse_key_forms() -> None:
    assert parse_key("0000000000000000") == KEY
    assert parse_key("30" * 16) == KEY
    assert parse_key("abcdefghijklmnop") == b"abcdefghijklmnop"
    for bad in ("", "short", "0" * 15, "0" * 17, "z" * 32, "密钥密钥密钥密钥密钥密钥密钥密钥"):
        with pytest.raises(ValueError, match="16 ASCII characters or 32 hex digits"):
            parse_key(bad)


@pytest.mark.parametrize(
    ("cp", "encrypted"),
    [("{0xE4,0x3E}", True), ("  {0X0a}", True), ("{}", False), ("DataTime=1", False), ("", False)],
)
def test_is_encrypted(cp: str, encrypted: bool) -> None:
    assert sm4.is_encrypted(cp) is encrypted


@pytest.mark.parametrize(
    "area",
    [
        "{0xE4,0x3E",  # no closing brace
        "{0xZZ}",  # not hex
        "{0x100," + ",".join(["0x00"] * 15) + "}",  # not a byte
        "{" + ",".join(["0x00"] * 15) + "}",  # not whole blocks
    ],
)
def test_decrypt_cp_errors(area: str) -> None:
    with pytest.raises(DecryptError):
        sm4.decrypt_cp(area, KEY)


def test_wrong_key_never_yields_an_accepted_frame() -> None:
    for key in (b"1" * 16, bytes(16), bytes(range(16))):
        for name in ("A.2-2", "A.2-4"):
            try:
                f = parse_frame(frame(name), key_for=lambda mn, key=key: key)
            except DecryptError:
                continue
            assert f.crc != "hj212"


def test_encrypted_frame_without_a_key() -> None:
    with pytest.raises(HeaderError) as info:
        parse_frame(frame("A.2-2"))
    assert info.value.reason == "no_key"
    with pytest.raises(HeaderError):
        parse_frame(frame("A.2-2"), key_for=lambda mn: None)


FIELDS_2025 = [
    ("QN", "20240520210700000"),
    ("ST", "31"),
    ("CN", "3020"),
    ("PW", "123456"),
    ("MN", "010000A8900016F000169DC0"),
    ("Flag", "9"),
]


@pytest.mark.parametrize("pad", range(16))
def test_encrypted_chinese_text_round_trip(pad: int) -> None:
    """BUG (sm4.py encrypt_cp ``raw[whole:].decode("utf-8")`` and decrypt_cp
    ``plain.decode("utf-8") + match.group(2)``): the whole blocks and the clear tail are
    decoded separately, so when the 16-byte boundary falls inside a multi-byte character
    (3020 log texts are Chinese) encrypt_cp raises UnicodeDecodeError and decrypt_cp
    raises DecryptError("wrong key?") although the key is right."""
    cp = "DataTime=20240520210600;i11001-Info=//" + "x" * pad + "清洗管路//"
    raw = build_encrypted_frame(FIELDS_2025, cp, KEY)
    f = parse_frame(raw[:-2], key_for=lambda mn: KEY)
    assert f.cp == cp
    assert f.crc == "hj212"


def test_encrypted_chinese_text_encrypted_by_hand_decrypts() -> None:
    """Same bug, decrypt side: a frame a device builds correctly (whole blocks enciphered,
    the tail bytes in clear) cannot be read when the boundary splits a character."""
    cp = "DataTime=20240520210600;i11001-Info=//清洗管路//"
    raw = cp.encode()
    whole = len(raw) - len(raw) % 16
    assert 0x80 <= raw[whole] < 0xC0  # the boundary falls inside a character
    cipher = Cipher(algorithms.SM4(KEY), modes.ECB()).encryptor().update(raw[:whole])
    area = ("{" + ",".join(f"0x{b:02X}" for b in cipher) + "}").encode() + raw[whole:]
    head = "".join(f"{k}={v};" for k, v in FIELDS_2025).encode()
    plain_segment = head + b"CP=&&" + raw + b"&&"
    wire = b"##%04d" % len(plain_segment) + head + b"CP=&&" + area + b"&&"
    wire += b"%04X" % crc_hj212(plain_segment)
    f = parse_frame(wire, key_for=lambda mn: KEY)
    assert f.cp == cp
    assert f.crc == "hj212"


@pytest.mark.parametrize("cp", ["", "QnRtn=1", "ExeRtn=1;x=123"])
def test_encrypted_round_trip_of_a_cp_shorter_than_one_block(cp: str) -> None:
    """BUG (builder/sm4 disagree): for a CP under 16 bytes encrypt_cp writes ``{}`` + the clear
    text, which is_encrypted() does not recognise (it wants ``{0x``), so parse_frame returns
    the CP ``{}QnRtn=1`` with CRC "none" for a frame build_encrypted_frame just made."""
    raw = build_encrypted_frame(FIELDS_2025, cp, KEY)
    f = parse_frame(raw[:-2], key_for=lambda mn: KEY)
    assert f.cp == cp
    assert f.crc == "hj212"


def test_gbk_frame_with_encrypted_cp_raises_only_hj212_error() -> None:
    """BUG (frame.py parse_frame, ``segment = plain.encode("gbk" ...)``): when the wire segment is
    GBK (not UTF-8) and the decrypted CP holds a character GBK cannot encode, parse_frame
    raises UnicodeEncodeError, not an HJ212Error; the server only catches HJ212Error."""
    cp = "a-Info=//\U0001f600abcdefghijklmnopqrs//"
    raw = cp.encode()
    whole = len(raw) - len(raw) % 16
    cipher = Cipher(algorithms.SM4(KEY), modes.ECB()).encryptor().update(raw[:whole])
    area = ("{" + ",".join(f"0x{b:02X}" for b in cipher) + "}").encode() + raw[whole:]
    head = "QN=1;ST=31;CN=3020;PW=密码;MN=M1;Flag=9;".encode("gbk")
    wire = b"##0300" + head + b"CP=&&" + area + b"&&ABCD"
    try:
        f = parse_frame(wire, key_for=lambda mn: KEY)
    except HJ212Error:
        return
    assert f.crc == "none"
