"""The gateway's configuration file (TOML), validated at start-up with precise errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# the adapters' sections, re-exported for the modules that check configuration
from adapters.hj212.config import Hj212Config as Hj212Config
from adapters.mqtt.config import MqttConfig as MqttConfig

from .anomalies.types import FAMILIES
from .archive.config import ArchiveSection
from .cluster.config import ClusterSection
from .errors import ConfigError, format_validation_error, load_toml
from .forward.config import ForwardTarget, check_targets
from .notify.config import NotifySection, check_references
from .registry import Registry

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_size(value: object) -> int:
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError("a size is a number of bytes or a string such as '512MiB' or '2GiB'")
    return int(match.group(1)) * _UNITS[match.group(2)]


log = structlog.get_logger("gateway")


def parse_tokens(
    env_name: str, value: str
) -> tuple[dict[str, Literal["viewer", "admin"]], list[str]]:
    """`token:role` pairs separated by commas (role `viewer` or `admin`): the tokens, and a
    problem per malformed entry, named by its position (never by its text, a secret)."""
    out: dict[str, Literal["viewer", "admin"]] = {}
    problems: list[str] = []
    entries = (e.strip() for e in value.split(","))
    for number, entry in enumerate(filter(None, entries), start=1):
        token, _, role = entry.rpartition(":")
        if not token or role not in ("viewer", "admin"):
            problems.append(f"{env_name}: entry {number}: expected token:viewer or token:admin")
            continue
        out[token] = "admin" if role == "admin" else "viewer"
    return out, problems


def check_listen(value: str) -> str:
    """A `host:port` to listen on, port 0 to 65535."""
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("listen must be host:port")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewaySection(_Section):
    data_dir: str = Field("var/gateway", description="spool and state; relative to the config file")
    registry: str = Field("registry.toml", description="registry file; relative to the config file")
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_s: float = Field(10.0, gt=0)


class InfluxSection(_Section):
    version: Literal[1, 2, 3] = 1
    url: str = "http://127.0.0.1:8086"
    database: str = Field("pollution", description="1.x database")
    retention_policy: str | None = None
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    org: str | None = Field(None, description="2.x/3.x organisation")
    bucket: str = "pollution"
    token_env: str | None = Field(
        None, description="environment variable holding the 2.x/3.x token"
    )
    create_database: bool = Field(True, description="1.x: CREATE DATABASE at start-up")
    gzip_level: int = Field(1, ge=0, le=9)
    batch_lines: int = Field(5000, ge=1)
    flush_interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(30.0, gt=0)
    retry_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _v2(self) -> InfluxSection:
        if self.version >= 2:
            if not self.org:
                raise ValueError("InfluxDB 2.x/3.x needs org")
            if not self.token_env:
                raise ValueError(
                    "InfluxDB 2.x/3.x needs token_env (the variable holding the token)"
                )
        return self

    def secret(self, env_name: str | None) -> str | None:
        return os.environ.get(env_name) if env_name else None


class SpoolSection(_Section):
    max_bytes: int = Field(1 << 30, description="unsent data on disk before acks stop")
    segment_bytes: int = Field(64 << 20)

    _sizes = field_validator("max_bytes", "segment_bytes", mode="before")(lambda v: parse_size(v))

    @model_validator(mode="after")
    def _order(self) -> SpoolSection:
        if self.segment_bytes < 1 << 16:
            raise ValueError("segment_bytes must be at least 64KiB")
        if self.max_bytes < self.segment_bytes:
            raise ValueError("max_bytes must be at least segment_bytes")
        return self


class CasesSection(_Section):
    enabled: bool = Field(True, description="a case to handle for anomalies that need action")
    warning_types: list[str] = Field(
        ["device_offline", "suspicious_data"],
        description="warnings of these types open a case too, a 预警 for the enterprise to "
        "answer (every alarm opens a 报警)",
    )
    join_same_day: bool = Field(
        True, description="an enterprise's anomalies of one Beijing day join its open case"
    )

    @field_validator("warning_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown anomaly types: {', '.join(unknown)}")
        return value


class RulesSection(_Section):
    enabled: bool = True
    tick_s: float = Field(1.0, gt=0, description="how often wall-clock rules (silence) run")
    status_interval_s: float = Field(60.0, gt=0, description="device_status points every")
    hourly_due_after_s: float = Field(
        1200.0, gt=0, description="data_gap: an hourly record this late after its hour ended"
    )


class ApiSection(_Section):
    enabled: bool = True
    listen: str = Field("127.0.0.1:9280", description="the enforcement API and the page")
    tokens_env: str = Field(
        "GATEWAY_API_TOKENS", description='variable holding "token:role,token:role" (viewer/admin)'
    )
    accounts_file: str = Field(
        "",
        description="named accounts with hashed tokens, roles and scopes (TOML); relative to "
        "the config file; read again when it changes",
    )
    stream_max_s: float | None = Field(
        None, gt=0, description="end an event stream after this long (the page resumes it)"
    )
    influx_unhealthy_after_s: float = Field(
        60.0, gt=0, description="/readyz: not ready once InfluxDB writes have failed this long"
    )

    _listen = field_validator("listen")(check_listen)

    def tokens(self) -> dict[str, Literal["viewer", "admin"]]:
        """Bearer tokens from the environment; ConfigError listing every malformed entry."""
        tokens, problems = parse_tokens(self.tokens_env, os.environ.get(self.tokens_env, ""))
        if problems:
            raise ConfigError(problems)
        return tokens


class MetricsSection(_Section):
    enabled: bool = True
    listen: str = "127.0.0.1:9213"

    _listen = field_validator("listen")(check_listen)


class Config(_Section):
    gateway: GatewaySection = GatewaySection()
    hj212: Hj212Config = Hj212Config()
    mqtt: MqttConfig = MqttConfig()
    influx: InfluxSection = InfluxSection()
    spool: SpoolSection = SpoolSection()
    rules: RulesSection = RulesSection()
    cases: CasesSection = CasesSection()
    api: ApiSection = ApiSection()
    metrics: MetricsSection = MetricsSection()
    notify: NotifySection = NotifySection()  # notifications: gateway/notify
    archive: ArchiveSection = ArchiveSection()  # the raw frame archive: gateway/archive
    forward: list[ForwardTarget] = []  # [[forward]] upstream platforms: gateway/forward
    cluster: ClusterSection = ClusterSection()  # the JetStream log: gateway/cluster


class RegistryHolder:
    """The registry in force. Its users read `current` (or call the holder) at each use, so
    a reload is one assignment."""

    def __init__(self, registry: Registry) -> None:
        self.current = registry

    def __call__(self) -> Registry:
        return self.current

    def reload(self, path: Path) -> list[str]:
        """Load `path` in place of the registry in force; on problems (or a file without
        enterprises where the one in force has some: an empty or truncated file) keep it and
        return them."""
        try:
            registry = Registry.load(path)
        except ConfigError as exc:
            log.error("registry reload refused; the registry in force stays", problems=exc.problems)
            return exc.problems
        if not registry.data.enterprises and self.current.data.enterprises:
            problem = (
                f"{path}: no enterprises (an empty or truncated file?); the registry in force stays"
            )
            log.error("registry reload refused; the registry in force stays", problems=[problem])
            return [problem]
        self.current = registry
        log.info("registry reloaded", **registry.counts())
        return []


class LoadedConfig:
    """A validated config with its paths resolved and its registry loaded (`registry` reads
    and replaces `registry_holder.current`)."""

    def __init__(self, path: Path, config: Config, registry: Registry) -> None:
        self.path = path
        self.config = config
        self.registry_holder = RegistryHolder(registry)
        self.data_dir = (path.parent / config.gateway.data_dir).resolve()

    @property
    def registry(self) -> Registry:
        return self.registry_holder.current

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self.registry_holder.current = registry

    @property
    def accounts_path(self) -> Path | None:
        """The accounts file, resolved; None when the config names none."""
        name = self.config.api.accounts_file
        return (self.path.parent / name).resolve() if name else None


def load_config(path: Path) -> LoadedConfig:
    """Load the config and the registry it names; ConfigError lists every problem."""
    raw = load_toml(path)
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems += format_validation_error(path, exc)
    registry_name = config.gateway.registry if config else _raw_registry(raw)
    registry: Registry | None = None
    try:
        registry = Registry.load(path.parent / registry_name)
    except ConfigError as exc:
        problems += exc.problems
    if config is not None:
        influx = config.influx
        if influx.version >= 2 and influx.token_env and influx.token_env not in os.environ:
            problems.append(
                f"{path}: influx.token_env: environment variable {influx.token_env} is not set"
            )
    if config is not None and registry is not None:  # notify: regions, enterprises, secrets
        problems += check_references(path, config.notify, registry)
        problems += check_targets(path, config.forward, config.archive.enabled, registry)
    if problems or registry is None or config is None:
        raise ConfigError(problems)
    return LoadedConfig(path, config, registry)


def _raw_registry(raw: dict[str, object]) -> str:
    section = raw.get("gateway")
    name = section.get("registry") if isinstance(section, dict) else None
    return name if isinstance(name, str) else GatewaySection().registry
