"""Building test uploads with the codec's own builders."""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.hj212.builder import build_encrypted_frame, build_frame, build_segment

MN_2025 = "010000A8900016F000169DC0"
KEY_2025 = b"0" * 16  # MN_2025's SM4 key in the test registry
MN_WATER = "23040281003022"


def upload(
    *,
    mn: str = MN_WATER,
    cn: str = "2061",
    data_time: datetime = datetime(2026, 3, 1, 8, 0, 0),
    values: dict[str, float] | None = None,
    qn: str | None = None,
    flag: int | None = 5,
    pw: str = "123456",
    st: str = "32",
    extra_header: list[tuple[str, str | int]] | None = None,
    crc: str = "hj212",
    key: bytes | None = None,
) -> bytes:
    """An upload frame with one `-Avg` (or `-Rtd` for 2011) value and flag N per pollutant;
    its CP SM4-encrypted with `key` when given."""
    values = values if values is not None else {"w01018": 40.1, "w21003": 1.5}
    suffix = "Rtd" if cn == "2011" else "Avg"
    groups = [f"{code}-{suffix}={value},{code}-Flag=N" for code, value in values.items()]
    cp = ";".join([f"DataTime={data_time:%Y%m%d%H%M%S}", *groups])
    fields: list[tuple[str, str | int]] = []
    if qn is not None:
        fields.append(("QN", qn))
    fields += [("ST", st), ("CN", cn), ("PW", pw), ("MN", mn)]
    if flag is not None:
        fields.append(("Flag", flag))
    fields += extra_header or []
    if key is not None:
        return build_encrypted_frame(fields, cp, key)
    return build_frame(build_segment(fields, cp), crc=crc)


def qn_for(i: int, base: datetime = datetime(2026, 3, 1, 9, 0, 0)) -> str:
    moment = base + timedelta(milliseconds=i)
    return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
