"""`[[forward]]`: the upstream platforms (provincial, national) the gateway delivers to."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.registry import parse_key

if TYPE_CHECKING:
    from gateway.registry import Registry

DEFAULT_CNS = ["2011", "2051", "2061", "2031", "2021", "2041"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MN = re.compile(r"[0-9A-Za-z._-]{1,64}")
_CN = re.compile(r"[23][0-9]{3}")
_PW = re.compile(r"[^\x00-\x20\x7f;,=&]{0,64}")


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("address must be host:port (port 1-65535)")
    return value


def _key(value: str) -> str:
    parse_key(value)  # ValueError naming the shape
    return value


def _password(value: str) -> str:
    if _PW.fullmatch(value) is None:
        raise ValueError("a password is at most 64 characters without blanks, ; , = or &")
    return value


class ForwardTarget(BaseModel):
    """One upstream platform: where, which protocol version, what goes there and how."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="names the cursor, the delivery log and the metrics' label")
    address: str = Field(description="host:port of the platform's HJ 212 listener")
    version: Literal["2017", "2025"] = "2017"
    sm4_key: str | None = Field(None, description="2025: the platform's key for every MN")
    sm4_keys: dict[str, str] = Field({}, description="2025: MN -> the platform's key for it")
    enterprises: list[str] = Field([], description="only these enterprises (empty: all)")
    mns: list[str] = Field([], description="only these MNs (empty: all)")
    cns: list[str] = Field(DEFAULT_CNS, description="the data kinds (CN) that go there")
    password: str | None = Field(None, description="PW upstream (none: the device's own)")
    passwords: dict[str, str] = Field({}, description="MN -> PW upstream")
    ack: bool = Field(True, description="the platform answers 9014: wait for it")
    ack_timeout_s: float = Field(10.0, gt=0)
    rate_per_s: float = Field(50.0, gt=0, description="frames per second at most (catch-up)")
    heartbeat_s: float = Field(0.0, ge=0, description="9015 when idle this long (0: none)")
    backoff_min_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    window: int = Field(1, ge=1, le=256, description="frames sent and not yet acknowledged")
    start: Literal["end", "oldest"] = Field(
        "end", description="a new target's first position: the archive's end, or its oldest day"
    )
    cursor_every: int = Field(100, ge=1, description="save the cursor every this many records")
    cursor_interval_s: float = Field(1.0, gt=0, description="... or this often")

    _address = field_validator("address")(lambda v: _address(v))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if _NAME.fullmatch(value) is None:
            raise ValueError("name is 1-64 letters, digits, '_' or '-' (it names files)")
        return value

    @field_validator("sm4_key")
    @classmethod
    def _default_key(cls, value: str | None) -> str | None:
        return None if value is None else _key(value)

    @field_validator("sm4_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for mn, key in value.items():
            _check_mn(mn)
            try:
                _key(key)
            except ValueError as exc:
                raise ValueError(f"{mn}: {exc}") from None
        return value

    @field_validator("mns")
    @classmethod
    def _mns(cls, value: list[str]) -> list[str]:
        for mn in value:
            _check_mn(mn)
        return value

    @field_validator("cns")
    @classmethod
    def _cns(cls, value: list[str]) -> list[str]:
        bad = [cn for cn in value if _CN.fullmatch(cn) is None]
        if bad:
            raise ValueError(f"not upload CNs (2xxx / 3xxx): {', '.join(bad)}")
        if not value:
            raise ValueError("at least one CN")
        return value

    @field_validator("password")
    @classmethod
    def _pw(cls, value: str | None) -> str | None:
        return None if value is None else _password(value)

    @field_validator("passwords")
    @classmethod
    def _pws(cls, value: dict[str, str]) -> dict[str, str]:
        for mn, pw in value.items():
            _check_mn(mn)
            try:
                _password(pw)
            except ValueError as exc:
                raise ValueError(f"{mn}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ForwardTarget:
        if self.version == "2017" and (self.sm4_key or self.sm4_keys):
            raise ValueError("sm4_key / sm4_keys are for version 2025 targets")
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")
        return self

    @property
    def version_bits(self) -> int:
        """`Flag >> 2` of what is sent: 1 for 2017, 2 for 2025."""
        return 2 if self.version == "2025" else 1

    def key_for(self, mn: str) -> bytes | None:
        text = self.sm4_keys.get(mn, self.sm4_key)
        return parse_key(text) if text else None

    def password_for(self, mn: str) -> str | None:
        return self.passwords.get(mn, self.password)


def _check_mn(mn: str) -> None:
    if _MN.fullmatch(mn) is None:
        raise ValueError(f"{mn!r} is not an MN (1-64 letters, digits, '.', '_', '-')")


def check_targets(
    path: Path, targets: list[ForwardTarget], archive_enabled: bool, registry: Registry
) -> list[str]:
    """What the targets need beyond their own keys: the archive on, unique names, the
    enterprises and MNs they name registered."""
    problems: list[str] = []
    if targets and not archive_enabled:
        problems.append(f"{path}: forward: forward targets need [archive] enabled = true")
    seen: set[str] = set()
    for n, target in enumerate(targets):
        where = f"{path}: forward[{n}]"
        if target.name in seen:
            problems.append(f"{where}.name: {target.name!r} is the name of another target")
        seen.add(target.name)
        for ent in target.enterprises:
            if registry.enterprise(ent) is None:
                problems.append(f"{where}.enterprises: {ent!r} is not in the registry")
        named = [*target.mns, *target.passwords, *target.sm4_keys]
        for mn in dict.fromkeys(named):
            if registry.device(mn) is None:
                problems.append(f"{where}: MN {mn!r} is not a registered HJ 212 device")
    return problems
