"""`check-config`: every problem start-up would refuse or run broken with, all at once, each as
``file: key: reason``.

Beyond validating the file and its registry (`load_config`), it looks at this machine: the
secret variables the config names are set, the API tokens are well-formed, the listen addresses
can be listened on (and are not shared), the MQTT CA bundle loads, the data folder is writable.
Sections that do not validate are reported by `load_config` and not looked at further.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .accounts import load_accounts
from .config import (
    ApiSection,
    GatewaySection,
    Hj212Config,
    InfluxSection,
    LoadedConfig,
    MetricsSection,
    MqttConfig,
    RulesSection,
    load_config,
    parse_tokens,
)
from .errors import ConfigError, load_toml
from .plan_check import check_plans

_S = TypeVar("_S", bound=BaseModel)
_WILDCARDS = ("", "0.0.0.0", "::")


@dataclass
class Report:
    """Problems (the gateway must not start so) and warnings (it starts, but see)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    loaded: LoadedConfig | None = None


def check_config(path: Path) -> Report:
    """Validate `path` and its registry, then check it against this machine."""
    report = Report()
    try:
        report.loaded = load_config(path)
    except ConfigError as exc:
        report.problems += exc.problems
    if report.loaded is not None:
        registry = report.loaded.registry
        report.warnings += [
            f"{registry.source}: enterprises.{p.enterprise}: {p.key}: {p.text} ({p.code})"
            for p in check_plans(registry)
        ]
    try:
        raw = load_toml(path)
    except ConfigError:
        return report  # unreadable: already reported
    _check_sections(path, raw, report)
    report.problems = list(dict.fromkeys(report.problems))  # load_config checks some too
    return report


def checked_config(file: str) -> LoadedConfig:
    """The config `file` once it passes every check; otherwise every problem on stderr and
    exit status 2. Warnings go to stderr either way."""
    report = check_config(Path(file))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.problems or report.loaded is None:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2)
    return report.loaded


def _section(raw: dict[str, Any], name: str, model: type[_S]) -> _S | None:
    try:
        return model.model_validate(raw.get(name, {}))
    except ValidationError:
        return None


def _check_sections(path: Path, raw: dict[str, Any], report: Report) -> None:
    gateway = _section(raw, "gateway", GatewaySection)
    hj212 = _section(raw, "hj212", Hj212Config)
    mqtt = _section(raw, "mqtt", MqttConfig)
    influx = _section(raw, "influx", InfluxSection)
    rules = _section(raw, "rules", RulesSection)
    api = _section(raw, "api", ApiSection)
    metrics = _section(raw, "metrics", MetricsSection)
    problems = report.problems

    if mqtt is not None and mqtt.enabled:
        if mqtt.password_env:
            problems += _secret(path, "mqtt.password_env", mqtt.password_env)
        problems += _ca_file(path, mqtt, report.warnings)
    if influx is not None:
        if influx.version == 1 and influx.password_env:
            problems += _secret(path, "influx.password_env", influx.password_env)
        if influx.version >= 2 and influx.token_env:
            problems += _secret(path, "influx.token_env", influx.token_env)
    if api is not None and api.enabled and (rules is None or rules.enabled):
        _tokens(path, api, report)
        if api.accounts_file:
            try:
                load_accounts(path.parent / api.accounts_file)
            except ConfigError as exc:
                problems += exc.problems

    listeners: list[tuple[str, str]] = []
    if hj212 is not None and hj212.enabled:
        listeners.append(("hj212.listen", hj212.listen))
    if api is not None and api.enabled:
        listeners.append(("api.listen", api.listen))
    if metrics is not None and metrics.enabled:
        listeners.append(("metrics.listen", metrics.listen))
    problems += _listeners(path, listeners)

    if gateway is not None:
        problems += _data_dir(path, gateway)


def _secret(path: Path, key: str, name: str) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return [f"{path}: {key}: environment variable {name} is not set"]
    if not value.strip():
        return [f"{path}: {key}: environment variable {name} is empty"]
    return []


def _tokens(path: Path, api: ApiSection, report: Report) -> None:
    value = os.environ.get(api.tokens_env)
    if value is None and api.accounts_file:
        return  # named accounts only
    if value is None:
        report.warnings.append(
            f"{path}: api.tokens_env: environment variable {api.tokens_env} is not set: "
            "the API refuses every /api/v1 request (401)"
        )
        return
    tokens, problems = parse_tokens(api.tokens_env, value)
    report.problems += [f"{path}: api.tokens_env: {problem}" for problem in problems]
    if not tokens and not problems:
        report.warnings.append(
            f"{path}: api.tokens_env: {api.tokens_env} holds no token: "
            "the API refuses every /api/v1 request (401)"
        )


def _ca_file(path: Path, mqtt: MqttConfig, warnings: list[str]) -> list[str]:
    if not mqtt.ca_file:
        return []
    if not mqtt.tls:
        warnings.append(f"{path}: mqtt.ca_file: tls is off, so the CA bundle is not used")
        return []
    ca = Path(mqtt.ca_file)
    where = "" if ca.is_absolute() else f" (relative to the working folder {Path.cwd()})"
    if not ca.exists():
        return [f"{path}: mqtt.ca_file: {ca} does not exist{where}"]
    if not ca.is_file():
        return [f"{path}: mqtt.ca_file: {ca} is not a file{where}"]
    try:
        ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        return [f"{path}: mqtt.ca_file: {ca} cannot be loaded as a CA bundle: {exc}"]
    return []


def _listeners(path: Path, listeners: list[tuple[str, str]]) -> list[str]:
    """Each address can be listened on (its host is one of this machine's); no port is used
    twice. Ports themselves are not tried: a running gateway holds them."""
    problems: list[str] = []
    seen: list[tuple[str, str, int]] = []
    for key, listen in listeners:
        host, _, port_text = listen.rpartition(":")
        if key == "api.listen":
            host = host.strip("[]")  # the API server takes [::1]:port; the others do not
        port = int(port_text)
        problem = _bind_problem(host)
        if problem is not None:
            problems.append(f"{path}: {key}: cannot listen on {listen}: {problem}")
            continue
        for other_key, other_host, other_port in seen:
            shared = host == other_host or host in _WILDCARDS or other_host in _WILDCARDS
            if port and port == other_port and shared:
                problems.append(f"{path}: {key}: port {port} is also {other_key}'s")
        seen.append((key, host, port))
    return problems


def _bind_problem(host: str) -> str | None:
    """Why a socket cannot be bound to `host` (any free port), or None."""
    if host in _WILDCARDS:
        return None
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"{host} does not resolve ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.bind(address)
    except OSError as exc:
        return f"{host} is not an address of this machine ({exc.strerror})"
    return None


def _data_dir(path: Path, gateway: GatewaySection) -> list[str]:
    """The data folder (spool, stores, poison file) exists and is writable, or can be made."""
    key = "gateway.data_dir"
    folder = (path.parent / gateway.data_dir).resolve()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        return [f"{path}: {key}: {folder} is not a folder"]
    if not existing.is_dir():
        return [f"{path}: {key}: {folder} cannot be created: {existing} is not a folder"]
    if existing != folder:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".check-", dir=existing))
        except OSError as exc:
            return [f"{path}: {key}: {folder} cannot be created in {existing}: {exc.strerror}"]
        return []
    problems: list[str] = []
    for inner in (folder, folder / "spool"):
        if inner.is_dir():
            try:
                fd, name = tempfile.mkstemp(prefix=".check-", dir=inner)
                os.close(fd)
                os.unlink(name)
            except OSError as exc:
                problems.append(f"{path}: {key}: {inner} is not writable: {exc.strerror}")
        elif inner.exists():
            problems.append(f"{path}: {key}: {inner} is not a folder")
    for name in ("anomalies.sqlite", "regime.sqlite", "poison.lp"):
        file = folder / name
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            problems.append(f"{path}: {key}: {file} is not writable")
    return problems
