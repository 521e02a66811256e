"""Run real InfluxDB 1.x, Mosquitto, NATS, PostgreSQL and HAProxy servers on loopback, with all
state under one folder.

Used by the test suite (session fixtures on free ports) and by the CLI's local defaults.
Standard library only; nothing is registered globally, so callers must stop what they start.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

_PACKAGES = {
    "influxd": "influxdb",
    "mosquitto": "mosquitto",
    "nats-server": "nats-server",
    "haproxy": "haproxy",
}


class LocalStackError(RuntimeError):
    """A local server could not be found, started, or queried."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def free_port_run(count: int) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that were free a moment ago
    (the metrics ports of a `cluster-node`'s processes)."""
    while True:
        base = free_port()
        if base + count >= 65536:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return base


def find_binary(name: str) -> str:
    """Locate a server binary on PATH, then in /usr/bin and /usr/sbin."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/bin", "/usr/sbin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    package = _PACKAGES.get(name, name)
    raise LocalStackError(f"{name!r} not found on PATH: install Debian package {package!r}")


def _request(method: str, url: str, data: bytes | None = None, timeout: float = 10.0) -> bytes:
    # Loopback traffic must never go through an http_proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise LocalStackError(f"{method} {url} -> HTTP {exc.code}: {detail}") from exc


class ManagedProcess:
    """One server process with a fixed port, data dir and command line; restartable."""

    def __init__(self, name: str, host: str, port: int, data_dir: Path, argv: list[str]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.log_path = data_dir / f"{name}.log"
        self._argv = argv
        self._proc: subprocess.Popen[bytes] | None = None
        self.run_as: str | None = None  # a user to run the server as (root only)

    @property
    def url(self) -> str:
        scheme = "http" if self.name == "influxdb" else "mqtt"
        return f"{scheme}://{f'{self.host}:{self.port}'}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server (no-op if running) and wait until it answers on its port."""
        if self.running:
            return
        self._proc = None
        self._check_port_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # INFLUXDB_* variables would silently override the generated config file.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                start_new_session=True,  # a Ctrl-C aimed at the parent must not reach it
                user=self.run_as,
                group=None if self.run_as is None else _group_of(self.run_as),
            )
        self._proc = proc
        deadline = time.monotonic() + timeout_s
        while (code := proc.poll()) is None:
            if self._ready():
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise self._error(f"not ready on {self.url} within {timeout_s:g}s (killed)")
            time.sleep(0.05)
        self._proc = None
        raise self._error(f"exited with code {code} while starting")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL. Safe to call when not running."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server without warning (fault injection) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _check_port_free(self) -> None:
        # Otherwise the readiness probe could be answered by whoever holds the port.
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
            try:
                s.bind((self.host, self.port))
            except OSError as exc:
                raise LocalStackError(
                    f"cannot start {self.name}: {self.host}:{self.port} in use ({exc})"
                ) from exc

    def answers(self) -> bool:
        """Whether a server (this one or another) already answers on the port."""
        return self._ready()

    def _ready(self) -> bool:
        try:
            if self.name == "influxdb":
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"{self.url}/ping", timeout=1.0) as resp:
                    status: int = resp.status
                    return status == 204
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:  # includes URLError and HTTPError
            return False

    def _error(self, what: str, lines: int = 30) -> LocalStackError:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                tail = "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError as exc:
            tail = f"<cannot read log: {exc}>"
        return LocalStackError(f"{self.name} {what}; {self.log_path} ends with:\n{tail}")


def influxdb(data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> ManagedProcess:
    """Write `data_dir/influxdb.conf` for an isolated influxd (HTTP on host:port); don't start."""
    binary = find_binary("influxd")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    rpc_port = free_port(host)  # the backup/restore RPC port, default :8088, would collide
    while rpc_port == port:
        rpc_port = free_port(host)
    q = json.dumps  # a JSON string is a valid TOML basic string

    config = f"""\
reporting-enabled = false
bind-address = "{host}:{rpc_port}"

[meta]
  dir = {q(str(data_dir / "meta"))}

[data]
  dir = {q(str(data_dir / "data"))}
  wal-dir = {q(str(data_dir / "wal"))}
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "{host}:{port}"
  log-enabled = false

[logging]
  suppress-logo = true
"""
    conf_path = data_dir / "influxdb.conf"
    conf_path.write_text(config, encoding="utf-8")
    return ManagedProcess(
        "influxdb", host, port, data_dir, [binary, "run", "-config", str(conf_path)]
    )


def mosquitto(data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> ManagedProcess:
    """Write `data_dir/mosquitto.conf` for an isolated broker on host:port; don't start."""
    binary = find_binary("mosquitto")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir}",  # mosquitto 2 appends "/mosquitto.db"
        "# The gateway's persistent session must not lose QoS 1 messages while it is down:",
        "# the default cap of 1000 queued messages per client would drop the overflow.",
        "max_queued_messages 100000",
        "# Unacknowledged QoS 1 messages per client: the gateway acks only once data is durable,",
        "# so this window is what keeps a fsync round trip from limiting throughput.",
        "max_inflight_messages 1000",
        "# Write the in-memory state (sessions, queued messages) to disk every 60 s, not 30 min.",
        "autosave_interval 60",
        "# stdout is redirected to the log file by ManagedProcess.",
        "log_dest stdout",
    ]
    if os.geteuid() == 0:
        lines.append("# As root, mosquitto would drop to user 'mosquitto', who can't write here.")
        lines.append("user root")
    conf_path = data_dir / "mosquitto.conf"
    conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ManagedProcess("mosquitto", host, port, data_dir, [binary, "-c", str(conf_path)])


class NatsServer(ManagedProcess):
    """One nats-server of a cluster: client port `port`, monitoring port `monitor_port`."""

    def __init__(
        self, name: str, host: str, port: int, monitor_port: int, data_dir: Path, argv: list[str]
    ) -> None:
        super().__init__(name, host, port, data_dir, argv)
        self.monitor_port = monitor_port

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def jetstream_ready(self) -> bool:
        """Whether this server's JetStream is up and current with the cluster (`/healthz`)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            url = f"http://{self.host}:{self.monitor_port}/healthz"
            with opener.open(url, timeout=1.0) as resp:
                status: int = resp.status
                return status == 200
        except OSError:
            return False


def nats_cluster(
    data_dir: Path, size: int = 3, host: str = "127.0.0.1", name: str = "gateway"
) -> list[NatsServer]:
    """Write a config for each of `size` clustered nats-servers with JetStream on (state under
    `data_dir/nN`); don't start. Start them all, then `wait_jetstream`: a server's JetStream
    is ready only once a quorum of them runs."""
    binary = find_binary("nats-server")
    data_dir = data_dir.resolve()
    ports = set[int]()

    def port() -> int:
        while (p := free_port(host)) in ports:
            pass
        ports.add(p)
        return p

    nodes = [(f"n{i + 1}", port(), port(), port()) for i in range(size)]
    routes = ", ".join(f"nats-route://{host}:{cluster}" for _, _, _, cluster in nodes)
    servers = []
    for node, client, monitor, cluster in nodes:
        directory = data_dir / node
        directory.mkdir(parents=True, exist_ok=True)
        q = json.dumps
        config = f"""\
server_name: {node}
listen: "{host}:{client}"
http: "{host}:{monitor}"
jetstream {{
  store_dir: {q(str(directory / "jetstream"))}
  max_memory_store: 64MB
  max_file_store: 4GB
}}
cluster {{
  name: {name}
  listen: "{host}:{cluster}"
  routes: [{routes}]
}}
"""
        conf_path = directory / "nats-server.conf"
        conf_path.write_text(config, encoding="utf-8")
        argv = [binary, "-c", str(conf_path)]
        servers.append(NatsServer(f"nats-{node}", host, client, monitor, directory, argv))
    return servers


def wait_jetstream(servers: list[NatsServer], timeout_s: float = 60.0) -> None:
    """Wait until every running server of the cluster reports JetStream ready."""
    deadline = time.monotonic() + timeout_s
    for server in servers:
        while server.running and not server.jetstream_ready():
            if time.monotonic() >= deadline:
                raise server._error(f"JetStream not ready within {timeout_s:g}s")
            time.sleep(0.1)


class PostgresServer(ManagedProcess):
    """A PostgreSQL server of its own: `initdb` into a fresh folder, TCP on host:port only,
    superuser `gateway` trusted from loopback (no password)."""

    def __init__(self, host: str, port: int, data_dir: Path, cluster_dir: Path, bindir: Path):
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(cluster_dir),
            "-h",
            host,
            "-p",
            str(port),
            "-c",
            "unix_socket_directories=",  # TCP only: no socket in a system folder
            "-c",
            "fsync=off",  # a test server: a crash of the machine may lose it whole
            "-c",
            "max_connections=200",
        ]
        super().__init__("postgres", host, port, data_dir, argv)
        self.cluster_dir = cluster_dir
        self._bindir = bindir

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://gateway@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.dsn()

    def _ready(self) -> bool:
        """Accepting connections (not merely listening while it starts up)."""
        probe = [str(self._bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)]
        return subprocess.run(probe, check=False, timeout=10).returncode == 0

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (letters, digits, '_'); its DSN."""
        if not name.replace("_", "").isalnum():
            raise LocalStackError(f"{name!r}: a database name of letters, digits and '_'")
        psql = [str(self._bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.dsn()]
        done = subprocess.run(
            [*psql, "-c", f'CREATE DATABASE "{name}"'], capture_output=True, check=False
        )
        if done.returncode != 0:
            raise LocalStackError(f"CREATE DATABASE {name}: {done.stderr.decode(errors='replace')}")
        return self.dsn(name)


def postgres_bindir() -> Path:
    """The newest of Debian's /usr/lib/postgresql/<major>/bin (package `postgresql`)."""
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise LocalStackError("initdb not found under /usr/lib/postgresql: install 'postgresql'")
    return found[-1]


def postgres(data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> PostgresServer:
    """`initdb` a cluster for an isolated PostgreSQL on host:port; don't start.

    PostgreSQL refuses to run as root. As root, the cluster lives in a folder of its own under
    the system's temporary folder (a pytest folder is closed to other users), owned by the
    `postgres` user of Debian's package, and initdb and the server run as that user."""
    bindir = postgres_bindir()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    user = "postgres" if os.geteuid() == 0 else None
    if user is None:
        cluster_dir = data_dir / "cluster"
    else:
        cluster_dir = Path(tempfile.mkdtemp(prefix="gateway-pg-")) / "cluster"
        shutil.chown(cluster_dir.parent, user, _group_of(user))
        (data_dir / "cluster-dir").write_text(f"{cluster_dir}\n", encoding="utf-8")
    initdb = [
        str(bindir / "initdb"),
        "-D",
        str(cluster_dir),
        "--username=gateway",
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    ]
    done = subprocess.run(
        initdb,
        capture_output=True,
        check=False,
        cwd="/",
        user=user,
        group=None if user is None else _group_of(user),
    )
    if done.returncode != 0:
        raise LocalStackError(f"initdb failed: {done.stderr.decode(errors='replace')}")
    server = PostgresServer(host, port, data_dir, cluster_dir, bindir)
    server.run_as = user
    return server


def remove_postgres(server: PostgresServer) -> None:
    """Stop the server and delete its cluster folder."""
    server.stop()
    shutil.rmtree(server.cluster_dir, ignore_errors=True)
    if server.run_as is not None:
        shutil.rmtree(server.cluster_dir.parent, ignore_errors=True)


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def create_database(url: str, db: str) -> None:
    """POST `CREATE DATABASE "db"` to an InfluxDB 1.x server (idempotent on the server side)."""
    body = urllib.parse.urlencode({"q": f"CREATE DATABASE {_ident(db)}"}).encode()
    result = json.loads(_request("POST", f"{url.rstrip('/')}/query", body))
    errors = [r["error"] for r in result.get("results", []) if "error" in r]
    if errors:
        raise LocalStackError(f"CREATE DATABASE {db!r} failed: {errors}")


def query(url: str, db: str, q: str) -> dict[str, Any]:
    """GET /query and return the parsed JSON; statement errors stay inside `results`."""
    params = urllib.parse.urlencode({"db": db, "q": q})
    result = json.loads(_request("GET", f"{url.rstrip('/')}/query?{params}"))
    if not isinstance(result, dict):
        raise LocalStackError(f"unexpected /query response: {result!r}")
    return result


class Route(NamedTuple):
    """One HAProxy TCP frontend on `port` and its backend `servers` (host, port), balanced
    round robin; `option` is appended to each server line (`send-proxy`, `send-proxy-v2`,
    or "" for plain TCP) and `source` is the address HAProxy connects to them from."""

    name: str
    port: int
    servers: list[tuple[str, int]]
    option: str = ""
    source: str | None = None


class HAProxyServer(ManagedProcess):
    """A haproxy of its own (Debian's `haproxy`): the TCP `routes`, and an HTTP monitor on
    `port` (`/ready`) that says it has started."""

    def __init__(self, host: str, port: int, data_dir: Path, argv: list[str], routes: list[Route]):
        super().__init__("haproxy", host, port, data_dir, argv)
        self.ports = {route.name: route.port for route in routes}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/ready"

    def _ready(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url, timeout=1.0) as resp:
                status: int = resp.status
                return status == 200
        except OSError:
            return False


def haproxy(
    data_dir: Path,
    routes: list[Route],
    host: str = "127.0.0.1",
    timeout_s: int = 600,
    maxconn: int = 2000,
) -> HAProxyServer:
    """Write `data_dir/haproxy.cfg` for an isolated haproxy with `routes` (clients and
    servers idle up to `timeout_s`, at most `maxconn` connections: it needs two file
    descriptors each); don't start."""
    binary = find_binary("haproxy")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    monitor = free_port(host)
    lines = [
        "global",
        "    nbthread 1",
        f"    maxconn {maxconn}",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        f"    timeout client {timeout_s}s",
        f"    timeout server {timeout_s}s",
        "frontend ready",
        "    mode http",
        f"    bind {host}:{monitor}",
        "    monitor-uri /ready",
    ]
    for route in routes:
        name = "".join(c if c.isalnum() else "_" for c in route.name)
        lines += [
            f"frontend fe_{name}",
            f"    bind {host}:{route.port}",
            f"    default_backend be_{name}",
            f"backend be_{name}",
            "    balance roundrobin",
        ]
        for i, (server_host, server_port) in enumerate(route.servers):
            source = f" source {route.source}" if route.source else ""
            option = f" {route.option}" if route.option else ""
            lines.append(f"    server s{i + 1} {server_host}:{server_port}{source}{option}")
    conf_path = data_dir / "haproxy.cfg"
    conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return HAProxyServer(host, monitor, data_dir, [binary, "-f", str(conf_path), "-db"], routes)
