"""requirements.lock pins, with hashes, every dependency pyproject.toml names, within its range."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# the platform the lock is compiled for (README, Installation)
HEX = "0123456789abcdef"
LOCK_ENV = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


def _pins() -> dict[str, tuple[Version, list[str]]]:
    """Name -> (pinned version, sha256 hashes) of every requirement in the lock."""
    logical: list[str] = []
    pending = ""
    for raw in LOCK.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += " " + line.removesuffix("\\")
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    assert not pending, "the lock ends inside a continued line"
    pins: dict[str, tuple[Version, list[str]]] = {}
    for entry in logical:
        spec, *options = (part.strip() for part in entry.split(" --"))
        req = Requirement(spec)
        specifiers = list(req.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", entry
        hashes = [o.removeprefix("hash=sha256:") for o in options if o.startswith("hash=sha256:")]
        assert len(hashes) == len(options), f"unexpected options in {entry[:80]}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} pinned twice"
        pins[name] = (Version(specifiers[0].version), hashes)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [*project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        names += extra
    return [Requirement(text) for text in names]


PINS = _pins()


def test_the_lock_pins_each_package_once_with_hashes() -> None:
    assert len(PINS) > 20
    for name, (_version, hashes) in PINS.items():
        assert hashes, f"{name} has no hash"
        assert all(len(h) == 64 and set(h) <= set(HEX) for h in hashes), name


@pytest.mark.parametrize("req", _declared(), ids=str)
def test_every_declared_dependency_is_pinned_within_its_range(req: Requirement) -> None:
    if req.marker is not None and not req.marker.evaluate(LOCK_ENV):
        pytest.skip(f"{req} does not apply to the lock's platform")
    name = canonicalize_name(req.name)
    assert name in PINS, f"{req.name} is not in {LOCK.name}: regenerate it (README, Installation)"
    version, _hashes = PINS[name]
    assert req.specifier.contains(version, prereleases=True), f"{name}=={version} outside {req}"


def test_the_environment_runs_the_locked_versions() -> None:
    """What the tests run on is what the lock pins (scripts/setup.sh installs it)."""
    stale = {}
    for name, (version, _hashes) in PINS.items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            stale[name] = (str(version), str(installed))
    assert not stale, f"locked vs installed (run scripts/setup.sh): {stale}"
