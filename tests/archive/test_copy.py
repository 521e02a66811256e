"""The backup's copy of the archive, taken while a write is under way, checks as a chain."""

from __future__ import annotations

from pathlib import Path

from gateway.archive.copy import copy_archive
from gateway.archive.verify import Verified, verify
from tests.archive.kit import write_days


async def test_a_copy_during_a_write_is_the_chain_up_to_its_last_whole_record(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live"
    await write_days(live, days=3, per_day=10, max_bytes=1 << 16)
    newest = live / "2026-03-12.frames"
    with newest.open("ab") as f:
        f.write(b"0123abcd half a record")  # a write under way
    report = copy_archive(live, tmp_path / "copy")
    result = verify(tmp_path / "copy")
    assert isinstance(result, Verified), result
    assert (result.days, result.records, result.torn_bytes) == (3, 30, 0)
    assert report.days == 3 and report.bytes == sum(
        p.stat().st_size for p in (tmp_path / "copy").glob("*.frames")
    )
