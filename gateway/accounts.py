"""Named accounts of the API: who calls, in what role, over which enterprises.

Accounts come from a TOML file (`[api] accounts_file`), each with the SHA-256 of its bearer
token (never the token: tokens are 32 random bytes, so a fast hash does not weaken them),
and from the legacy `token:role` variable (`[api] tokens_env`, whole province). The file is
read again when it changes, so a token is issued, rotated or revoked without a restart; a
file that no longer parses keeps the accounts in force and says why in the log.

Roles: `viewer` reads; `officer` reads and handles anomalies; `admin` also issues alerts and
orders, reloads the registry and reads the audit log; `enterprise` is a plant's own staff,
who read their own enterprises' anomalies. A scope is a list of regions (each covering the
regions under it, see `gateway.regions`) and a list of enterprises; `all_regions` covers
everything, including anomalies of no enterprise (unregistered devices).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError, format_validation_error, load_toml
from .registry import Registry

Role = Literal["viewer", "officer", "admin", "enterprise"]
RANK: dict[Role, int] = {"enterprise": 0, "viewer": 1, "officer": 2, "admin": 3}
log = structlog.get_logger("gateway.accounts")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh bearer token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


class AccountSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9._@-]+$",
        description="login name (not token-..., the names of the legacy tokens)",
    )
    display_name: str = Field("", description="e.g. 张三 (虎丘区执法大队)")
    role: Role
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    all_regions: bool = False
    regions: list[str] = []
    enterprises: list[str] = []
    disabled: bool = False

    @model_validator(mode="after")
    def _scope(self) -> AccountSpec:
        if self.name.startswith("token-"):
            raise ValueError("names token-... are the legacy tokens'")
        if self.role == "enterprise" and (self.all_regions or self.regions or not self.enterprises):
            raise ValueError("an enterprise account has a list of enterprises and no regions")
        if not (self.all_regions or self.regions or self.enterprises):
            raise ValueError("no scope: give all_regions, regions or enterprises")
        return self


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[AccountSpec] = []

    @model_validator(mode="after")
    def _unique(self) -> AccountsFile:
        names = [a.name for a in self.accounts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"account names appear twice: {', '.join(twice)}")
        hashes = [a.token_sha256 for a in self.accounts]
        if len(set(hashes)) != len(hashes):
            raise ValueError("two accounts have the same token")
        return self


@dataclass(frozen=True, slots=True)
class Caller:
    """The account behind a request."""

    name: str
    role: Role
    display_name: str = ""
    all_regions: bool = False
    regions: tuple[str, ...] = ()
    enterprises: tuple[str, ...] = ()

    def at_least(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]

    def sees(self, enterprise_id: str, registry: Registry) -> bool:
        """Whether the enterprise lies in the caller's scope ("" for none: only the whole)."""
        if self.all_regions:
            return True
        if not enterprise_id:
            return False
        if enterprise_id in self.enterprises:
            return True
        ent = registry.enterprise(enterprise_id)
        return ent is not None and registry.regions.within(ent.region, self.regions)

    def visible(self, registry: Registry) -> frozenset[str] | None:
        """The enterprise ids in scope; None for everything."""
        if self.all_regions:
            return None
        return frozenset(e.id for e in registry.data.enterprises if self.sees(e.id, registry))


def load_accounts(path: Path) -> AccountsFile:
    raw = load_toml(path)
    try:
        return AccountsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None


class Accounts:
    """The accounts in force: the file's (reloaded when it changes) and the legacy tokens."""

    def __init__(self, path: Path | None, legacy: Mapping[str, Role] | None = None) -> None:
        self.path = path
        # told what a reload changed: {"added": names, "removed": names, "changed": names}
        self.on_reload: Callable[[dict[str, list[str]]], None] | None = None
        self._stamp: tuple[int, int, int, int] | None = None
        self._by_hash: dict[str, Caller] = {}
        self._legacy = {  # named by their hash, so that the name does not depend on order
            (digest := token_hash(token)): Caller(f"token-{digest[:8]}", role, all_regions=True)
            for token, role in (legacy or {}).items()
        }
        if path is not None:
            self._stamp = _stamp(path)
            self._by_hash = self._read(load_accounts(path))

    @staticmethod
    def _read(data: AccountsFile) -> dict[str, Caller]:
        return {
            a.token_sha256: Caller(
                a.name,
                a.role,
                a.display_name,
                a.all_regions,
                tuple(a.regions),
                tuple(a.enterprises),
            )
            for a in data.accounts
            if not a.disabled
        }

    def _refresh(self) -> None:
        """Read the file again when it changed. A file caught mid-write (its stamp moved while
        it was read) is read at the next request; one that does not parse, or that has no
        account where some are in force (an empty or truncated file), keeps those in force:
        write the file elsewhere and rename it into place."""
        if self.path is None:
            return
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        try:
            data = load_accounts(self.path)
        except ConfigError as exc:
            if _stamp(self.path) == stamp:
                self._stamp = stamp
                log.error("accounts file refused; the accounts in force stay", problem=str(exc))
            return
        if _stamp(self.path) != stamp:
            return  # changed while it was read
        self._stamp = stamp
        if not data.accounts and self._by_hash:
            log.error("accounts file without accounts refused; the accounts in force stay")
            return
        fresh = self._read(data)
        change = _changes(self._by_hash, fresh)
        self._by_hash = fresh
        log.info("accounts reloaded", accounts=len(fresh), **change)
        if self.on_reload is not None and any(change.values()):
            self.on_reload(change)

    def caller(self, token: str) -> Caller | None:
        """The account a bearer token belongs to, or None. Looked up by the token's hash,
        so timing tells nothing about the token itself."""
        self._refresh()
        given = token_hash(token)
        return self._by_hash.get(given) or self._legacy.get(given)

    def __len__(self) -> int:
        return len(self._legacy) + len(self._by_hash)


def _changes(old: Mapping[str, Caller], new: Mapping[str, Caller]) -> dict[str, list[str]]:
    """Account names added, removed, and changed (role, scope or token) by a reload."""
    before = {c.name: (h, c) for h, c in old.items()}
    after = {c.name: (h, c) for h, c in new.items()}
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(n for n in before.keys() & after.keys() if before[n] != after[n]),
    }


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
