"""`pollution-gateway archive verify` over days written by the real writer: it passes on the
archive as written, and names the first broken record's day and offset when one byte of a day
is changed, a record is removed, or a day in the middle (or the newest) is deleted."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

from gateway.archive.files import day_files
from tests.archive.kit import write_days

ROOT = Path(__file__).resolve().parents[2]


def verify(directory: Path, *args: str) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "archive", "verify", "--dir", str(directory), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.returncode, out.stdout + out.stderr


async def test_an_archive_as_written_verifies(tmp_path: Path) -> None:
    await write_days(tmp_path, days=3, per_day=20)
    code, out = verify(tmp_path, "--all")
    last = day_files(tmp_path)[-1][1].read_bytes().splitlines()[-1].split(b" ")[0].decode()
    assert code == 0, out
    assert f"OK: 3 days (2026-03-10 .. 2026-03-12), 60 records, last hash {last}" in out
    code, out = verify(tmp_path, "2026-03-11")
    assert code == 0 and "1 days (2026-03-11 .. 2026-03-11), 20 records" in out


async def test_one_changed_byte_is_found_at_its_record(tmp_path: Path) -> None:
    await write_days(tmp_path, days=3, per_day=20)
    path = tmp_path / "2026-03-11.frames"
    data = bytearray(path.read_bytes())
    starts = [0, *[i + 1 for i, b in enumerate(data) if b == ord("\n")][:-1]]
    offset = starts[6]  # line 7
    at = data.index(b'"raw":"', offset) + 10
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    path.write_bytes(bytes(data))
    code, out = verify(tmp_path, "--all")
    assert code == 1
    assert f"day 2026-03-11, line 7, offset {offset}: HASH does not match" in out
    code, out = verify(tmp_path, "2026-03-11")
    assert code == 1 and f"line 7, offset {offset}" in out
    assert verify(tmp_path, "2026-03-10")[0] == 0


async def test_a_removed_record_is_found(tmp_path: Path) -> None:
    await write_days(tmp_path, days=2, per_day=10)
    path = tmp_path / "2026-03-10.frames"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4] + lines[5:]))
    code, out = verify(tmp_path, "--all")
    offset = sum(map(len, lines[:4]))
    assert code == 1
    assert f"day 2026-03-10, line 5, offset {offset}: PREV is not the hash" in out


async def test_a_deleted_middle_day_and_a_deleted_newest_day_are_found(tmp_path: Path) -> None:
    await write_days(tmp_path, days=4, per_day=5)
    (tmp_path / "2026-03-11.frames").unlink()
    code, out = verify(tmp_path, "--all")
    assert code == 1
    assert "day 2026-03-12, line 1, offset 0: the day does not continue the chain" in out
    (tmp_path / "2026-03-12.frames").unlink()
    (tmp_path / "2026-03-13.frames").unlink()  # the newest: the one being written
    code, out = verify(tmp_path, "--all")
    assert code == 1 and "day 2026-03-13" in out and "being written is missing" in out


async def test_the_oldest_day_deleted_by_hand_is_found_but_not_one_the_gateway_pruned(
    tmp_path: Path,
) -> None:
    await write_days(tmp_path, days=3, per_day=5)
    manual = tmp_path / "manual"
    manual.mkdir()
    for _, path in day_files(tmp_path):
        (manual / path.name).write_bytes(path.read_bytes())
    (manual / "current.json").write_bytes((tmp_path / "current.json").read_bytes())
    (manual / "2026-03-10.frames").unlink()
    code, out = verify(manual, "--all")
    assert code == 1 and "day 2026-03-11, line 1, offset 0" in out
    # the gateway's own deletion notes the day's last hash: the chain still checks
    pruned = tmp_path / "pruned"
    await write_days(pruned, days=3, per_day=80, max_bytes=1 << 16)
    kept = [d for d, _ in day_files(pruned)]
    assert date(2026, 3, 10) not in kept and kept[-1] == date(2026, 3, 12)
    code, out = verify(pruned, "--all")
    assert code == 0, out
