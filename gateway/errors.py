"""Configuration errors, reported with the file, the key and the reason."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def format_validation_error(path: Path, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        key = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"]
        ).lstrip(".")
        reason = err["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {key or '(top level)'}: {reason}")
    return problems


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError naming the file when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (byte {exc.start})"]) from None
