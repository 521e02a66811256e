"""The registry: enterprises and their devices, loaded from one TOML file and validated."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.hj212.config import CrcPolicy, check_timezone
from adapters.hj212.sm4 import parse_key

from .errors import ConfigError, format_validation_error


class Outlet(BaseModel):
    """An HJ 212 device (data logger) at an outlet or monitoring point."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    mn: str = Field(min_length=1, max_length=64)
    password: str = ""
    open: bool = Field(False, description="accept any password")
    version: Literal["2005", "2017", "2025"] | None = None
    crc_policy: CrcPolicy | None = None
    sm4_key: str | None = None
    timezone: str | None = None
    kind: Literal["gas", "water", "vocs", "dust", "power", "other"] = "gas"

    @field_validator("sm4_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None:
            parse_key(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _password(self) -> Outlet:
        if not self.open and not self.password:
            raise ValueError("an outlet needs a password unless it is open = true")
        return self


class Enterprise(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    region: str = ""
    industry: str = ""
    grade: str = ""
    outlets: list[Outlet] = []


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enterprises: list[Enterprise] = []

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        seen_mn: dict[str, str] = {}
        seen_ent: set[str] = set()
        for ent in self.enterprises:
            if ent.id in seen_ent:
                raise ValueError(f"enterprise id {ent.id!r} appears twice")
            seen_ent.add(ent.id)
            for outlet in ent.outlets:
                where = f"{ent.id}/{outlet.id}"
                if outlet.mn in seen_mn:
                    raise ValueError(f"MN {outlet.mn!r} of {where} is also {seen_mn[outlet.mn]}")
                seen_mn[outlet.mn] = where
        return self


@dataclass(frozen=True, slots=True)
class Device:
    """A registered HJ 212 device as the adapters use it."""

    enterprise: str
    outlet: Outlet
    sm4_key: bytes | None
    timezone: ZoneInfo | None


class Registry:
    def __init__(self, data: RegistryFile, source: str = "<memory>") -> None:
        self.data = data
        self.source = source
        self._by_mn: dict[str, Device] = {}
        for ent in data.enterprises:
            for outlet in ent.outlets:
                self._by_mn[outlet.mn] = Device(
                    enterprise=ent.id,
                    outlet=outlet,
                    sm4_key=parse_key(outlet.sm4_key) if outlet.sm4_key else None,
                    timezone=ZoneInfo(outlet.timezone) if outlet.timezone else None,
                )

    def device(self, mn: str) -> Device | None:
        return self._by_mn.get(mn)

    def devices(self) -> Iterator[Device]:
        return iter(self._by_mn.values())

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Load and validate; raises ConfigError listing every problem with its key."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        try:
            return cls(RegistryFile.model_validate(raw), str(path))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(path, exc)) from None
