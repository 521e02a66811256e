"""The checkout stands alone: a clone in a folder with nothing beside it runs the tests that
read published frames and the shipped configuration (the rest need no files at all)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_clone_with_nothing_beside_it_finds_every_file_its_tests_read(tmp_path: Path) -> None:
    clone = tmp_path / "alone" / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/codec",
            "tests/test_config.py",
            "tests/test_deploy.py",
            "tests/test_state_versions.py",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "error" not in result.stdout.splitlines()[-1]
    # the published frames the TCP tests send (they also need servers, so they are not run here)
    frames = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.conftest import vector_frames; print(len(vector_frames()))",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert frames.returncode == 0, frames.stderr[-2000:]
    assert int(frames.stdout) >= 20
