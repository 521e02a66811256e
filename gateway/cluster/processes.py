"""One node, many cores: `pollution-gateway cluster-node` runs N ingestion processes sharing
the HJ 212 port (SO_REUSEPORT: the kernel spreads the connections over them) and M writer
processes, all of one config file; restarts a process that ends (with backoff, counted and
logged) and stops them all on SIGTERM / SIGINT.

Each process is `pollution-gateway run --config FILE --process ROLE:INDEX:N`, which
`node_process` turns into that process's configuration: its role, its own data folder and
metrics port, and what runs only once on the node (see gateway/cluster/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from ..config import LoadedConfig
from ..errors import ConfigError
from .config import Role

log = structlog.get_logger("gateway.cluster")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class NodeProcess:
    """One process of a node: `role`, its `index` among that role's, and `ingest_count`, the
    node's number of ingestion processes (what is run once depends on it)."""

    role: Role
    index: int
    ingest_count: int
    writer_count: int = 0  # rule workers' metrics ports come after the writers'

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    @property
    def offset(self) -> int:
        """Added to the metrics port: ingestion processes 0..N-1, then the writers."""
        if self.role == "ingest":
            return self.index
        if self.role == "writer":
            return self.ingest_count + self.index
        return self.ingest_count + self.writer_count + self.index

    @property
    def first(self) -> bool:
        """Ingestion process 0: the one that runs MQTT and the API."""
        return self.role == "ingest" and self.index == 0

    def argument(self) -> str:
        if self.role == "rules":
            return f"rules:{self.index}:{self.ingest_count}:{self.writer_count}"
        return f"{self.role}:{self.index}:{self.ingest_count}"

    @classmethod
    def parse(cls, text: str) -> NodeProcess:
        """`ROLE:INDEX:N` (`rules:INDEX:N:M`) as `argument()` writes it; ValueError
        otherwise."""
        role, _, rest = text.partition(":")
        index, _, count = rest.partition(":")
        count, _, writers = count.partition(":")
        roles: dict[str, Role] = {"ingest": "ingest", "writer": "writer", "rules": "rules"}
        if (
            role not in roles
            or not index.isdigit()
            or not count.isdigit()
            or (writers != "" and not writers.isdigit())
            or (writers != "") != (role == "rules")
        ):
            raise ValueError(
                f"{text!r}: expected ingest:INDEX:N, writer:INDEX:N or rules:INDEX:N:M"
            )
        process = cls(roles[role], int(index), int(count), int(writers or 0))
        if process.role == "ingest" and process.index >= process.ingest_count:
            raise ValueError(
                f"{text!r}: ingestion process {process.index} of {process.ingest_count}"
            )
        return process


def _with_port(listen: str, offset: int) -> str:
    host, _, port = listen.rpartition(":")
    return listen if int(port) == 0 else f"{host}:{int(port) + offset}"


def node_process(loaded: LoadedConfig, process: NodeProcess) -> LoadedConfig:
    """The configuration of `process` of a node running `loaded`'s config.

    - its role only (`[cluster] role` of the file is not used), node name `<node>-<role>-<i>`;
    - its own data folder, `<data_dir>/processes/<role>-<i>` (archive, poison lines, state);
    - metrics on the configured port + offset (ingestion i: +i; writer j: +N+j);
    - MQTT and the API in ingestion process 0 only (one MQTT session, one API port);
    - with rule workers (`rule_workers`): the rules in them, over enterprise partitions;
      without: only when N = 1 (in ingestion process 0), since with several ingestion
      processes each sees part of an enterprise's traffic;
    - writers and rule workers: no archive and no forwarding (they receive no frames).
    """
    cfg = loaded.config
    workers = cfg.cluster.rule_workers
    cluster = cfg.cluster.model_copy(
        update={"role": [process.role], "node": f"{cfg.cluster.node_name}-{process.name}"}
    )
    ingest = process.role == "ingest"
    rules_on = process.role == "rules" if workers else process.first and process.ingest_count == 1
    updates: dict[str, object] = {
        "cluster": cluster,
        "metrics": cfg.metrics.model_copy(
            update={"listen": _with_port(cfg.metrics.listen, process.offset)}
        ),
        "mqtt": cfg.mqtt.model_copy(update={"enabled": cfg.mqtt.enabled and process.first}),
        "api": cfg.api.model_copy(update={"enabled": cfg.api.enabled and process.first}),
        "rules": cfg.rules.model_copy(update={"enabled": cfg.rules.enabled and rules_on}),
    }
    if not ingest:
        updates["archive"] = cfg.archive.model_copy(update={"enabled": False})
        updates["forward"] = []
    out = LoadedConfig(loaded.path, cfg.model_copy(update=updates), loaded.registry)
    out.data_dir = loaded.data_dir / "processes" / process.name
    return out


def check_node(loaded: LoadedConfig, ingest: int, writers: int, rules: int = 0) -> list[str]:
    """Why `loaded` cannot run as a node of `ingest` + `writers` + `rules` processes (empty:
    it can)."""
    cfg, where = loaded.config, str(loaded.path)
    problems = []
    if ingest < 1 or writers < 0 or rules < 0:
        problems.append("--ingest must be at least 1, --writers and --rules at least 0")
    if rules > 0 and not cfg.cluster.rule_workers:
        problems.append(f"{where}: --rules needs [cluster] rule_workers = true")
    if cfg.cluster.rule_workers and not cfg.cluster.postgres_dsn:
        problems.append(
            f"{where}: rule workers share the anomaly store: [cluster] postgres_dsn is needed"
        )
    if not cfg.cluster.enabled:
        problems.append(f"{where}: cluster-node needs [cluster] enabled = true (the stream)")
    if ingest > 1 and cfg.hj212.enabled:
        if not cfg.hj212.reuse_port:
            problems.append(f"{where}: --ingest > 1 needs [hj212] reuse_port = true")
        if int(cfg.hj212.listen.rpartition(":")[2]) == 0:
            problems.append(f"{where}: --ingest > 1 needs a fixed [hj212] listen port, not 0")
    if ingest > 1 and cfg.forward:
        problems.append(
            f"{where}: [[forward]] reads one archive; with --ingest > 1 each process archives "
            "its own connections: forwarding is not supported there yet"
        )
    return problems


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Slot:
    """One process of the node, started again whenever it ends while the node runs."""

    def __init__(self, process: NodeProcess) -> None:
        self.process = process
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.restarts = 0


class Launcher:
    """Runs and keeps running the processes of one node until `stop()`.

    A process that ends is started again after `backoff_s`, doubled for each end in a row
    that came within `stable_s` of its start, at most `backoff_max_s`. On stop each process
    gets SIGTERM and `stop_timeout_s` to shut down, then SIGKILL.
    """

    def __init__(
        self,
        config: Path,
        ingest: int,
        writers: int,
        *,
        rules: int = 0,
        stop_timeout_s: float,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stable_s: float = 30.0,
    ) -> None:
        self.config = config
        self.slots = [_Slot(NodeProcess("ingest", i, ingest)) for i in range(ingest)]
        self.slots += [_Slot(NodeProcess("writer", j, ingest)) for j in range(writers)]
        self.slots += [_Slot(NodeProcess("rules", k, ingest, writers)) for k in range(rules)]
        self.stop_timeout_s = stop_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self._stopping = asyncio.Event()

    def argv(self, process: NodeProcess) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            "--config",
            str(self.config),
            "--process",
            process.argument(),
        ]

    @property
    def restarts(self) -> int:
        return sum(slot.restarts for slot in self.slots)

    def stop(self) -> None:
        self._stopping.set()

    def reload(self) -> None:
        """SIGHUP to every process: each loads the registry again."""
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(signal.SIGHUP)

    async def run(self) -> None:
        """Start every process, keep them running, and return once all ended after `stop()`."""
        log.info(
            "node starting",
            ingest=sum(s.process.role == "ingest" for s in self.slots),
            writers=sum(s.process.role == "writer" for s in self.slots),
            rules=sum(s.process.role == "rules" for s in self.slots),
        )
        await asyncio.gather(*(self._keep(slot) for slot in self.slots))
        log.info("node stopped", restarts=self.restarts)

    async def _keep(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # ends in a row, each soon after its start
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                started = loop.time()
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *self.argv(slot.process),
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,  # the terminal's Ctrl-C reaches the launcher only
                        preexec_fn=_die_with_parent,
                    )
                except OSError as exc:  # no process (out of memory, of processes): try again
                    pid, code = None, repr(exc)
                else:
                    slot.proc, slot.starts = proc, slot.starts + 1
                    log.info("process started", process=slot.process.name, pid=proc.pid)
                    ended = asyncio.ensure_future(proc.wait())
                    await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not ended.done():
                        await self._end(slot, proc, ended)
                        return
                    if self._stopping.is_set():
                        return
                    pid, code = proc.pid, str(proc.returncode)
                failures = failures + 1 if loop.time() - started < self.stable_s else 1
                delay = min(self.backoff_max_s, self.backoff_s * 2 ** (failures - 1))
                slot.restarts += 1
                log.error(
                    "process ended; starting it again",
                    process=slot.process.name,
                    pid=pid,
                    code=code,
                    restarts=slot.restarts,
                    delay_s=delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopping), delay)
        finally:
            stopping.cancel()

    async def _end(
        self, slot: _Slot, proc: asyncio.subprocess.Process, ended: asyncio.Future[int]
    ) -> None:
        """SIGTERM, then SIGKILL past `stop_timeout_s`."""
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(ended, self.stop_timeout_s)
        except TimeoutError:
            log.warning("process did not stop in time; killed", process=slot.process.name)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("process stopped", process=slot.process.name, code=proc.returncode)


async def run_node(loaded: LoadedConfig, ingest: int, writers: int, rules: int = 0) -> None:
    """The launcher until SIGTERM or SIGINT."""
    problems = check_node(loaded, ingest, writers, rules)
    if problems:
        raise ConfigError(problems)
    launcher = Launcher(
        loaded.path,
        ingest,
        writers,
        rules=rules,
        stop_timeout_s=loaded.config.gateway.shutdown_timeout_s + 5.0,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, launcher.stop)
    loop.add_signal_handler(signal.SIGHUP, launcher.reload)
    try:
        await launcher.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
