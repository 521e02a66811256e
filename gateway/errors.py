"""Configuration errors, reported with the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

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
