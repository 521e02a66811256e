"""``pollution-gateway fuzz``: hostile and broken devices beside good ones, against a real
gateway process and a real InfluxDB, and what it cost.

The gateway runs as its own process (its log kept, its memory read from /proc). Good data
loggers send minute uploads and count every 9014; hostile connections send mutated frames
(`mutate.KINDS`: line noise, and frames with a valid CRC that lie), some of them never reading
their socket. Afterwards the report says: whether the gateway stayed up, tracebacks in its
log, every acked good point found in InfluxDB (or not), points stored under good devices'
MNs that they never sent (corrupted frames accepted), series in InfluxDB, refused-device
anomalies, lines InfluxDB refused (the poison file), secrets found in the log, and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.hj212.builder import build_frame, build_segment
from adapters.hj212.device import DeviceClient
from devkit import localstack
from devkit.mutate import KINDS, NOISE, mutate
from devkit.process import metric, rss_mb, start_gateway, stop, wait_port
from gateway.anomalies.store import AnomalyStore

CODES = ("a21026", "a21002", "a34013", "a19001", "a00000", "a01012")
API_TOKEN = "fuzz-api-token-5d1e0c"
INFLUX_PASSWORD = "fuzz-influx-secret-77b2"


@dataclass
class FuzzReport:
    frames_hostile: int
    frames_good: int
    good_acked: int
    good_points_expected: int
    good_points_stored: int
    corrupted_stored: int  # frames with line noise stored as if their good device sent them
    gateway_alive: bool
    exit_status: int | None
    tracebacks: int
    log_lines: int
    poison_lines: int
    series: int
    refused_anomalies: int
    secrets_in_log: int
    rss_mb_start: float
    rss_mb_end: float
    elapsed_s: float

    def problems(self) -> list[str]:
        """What the fuzz run says is wrong (empty: nothing)."""
        out = []
        if not self.gateway_alive or self.exit_status not in (0, None):
            out.append(f"gateway stopped or exited with {self.exit_status}")
        if self.tracebacks:
            out.append(f"{self.tracebacks} tracebacks in the log")
        if self.good_points_stored != self.good_points_expected:
            out.append(f"{self.good_points_expected - self.good_points_stored} acked points lost")
        if self.good_acked != self.frames_good:
            out.append(f"{self.frames_good - self.good_acked} good frames not acked")
        if self.poison_lines:
            out.append(f"{self.poison_lines} lines refused by InfluxDB after the ack")
        if self.secrets_in_log:
            out.append(f"{self.secrets_in_log} secrets in the log")
        return out


def _password(k: int) -> str:
    return f"pw-fuzz-{k:03d}-c9"


def _mn(k: int) -> str:
    return f"FUZZGOOD{k:016d}"


def _registry(good: int) -> str:
    outlets = "".join(
        f'\n  [[enterprises.outlets]]\n  id = "G{k}"\n  mn = "{_mn(k)}"\n'
        f'  password = "{_password(k)}"\n  version = "2017"\n'
        for k in range(good)
    )
    return f'[[enterprises]]\nid = "FUZZ"\nregion = "fuzz-city"\n{outlets}'


def _config(work: Path, good: int, port: int, metrics_port: int, influx_url: str) -> Path:
    (work / "registry.toml").write_text(_registry(good))
    config = work / "gateway.toml"
    config.write_text(
        f"""[gateway]
data_dir = "gw"
log_format = "json"
log_level = "info"
shutdown_timeout_s = 10
[hj212]
listen = "127.0.0.1:{port}"
[influx]
url = "{influx_url}"
database = "fuzz"
username = "fuzz"
password_env = "FUZZ_INFLUX_PASSWORD"
flush_interval_s = 0.2
retry_max_s = 1.0
[metrics]
listen = "127.0.0.1:{metrics_port}"
[api]
listen = "127.0.0.1:{localstack.free_port()}"
tokens_env = "FUZZ_API_TOKENS"
"""
    )
    return config


def _value(k: int, i: int) -> float:
    return (i * 7 + k) % 90 + 0.5


def good_frame(k: int, i: int, base: datetime) -> bytes:
    """Good device `k`'s i-th minute upload (one a minute from `base`, Beijing time)."""
    t = base + timedelta(minutes=i)
    groups = [f"{c}-Avg={_value(k, i)},{c}-Flag=N" for c in CODES]
    cp = ";".join([f"DataTime={t:%Y%m%d%H%M%S}", *groups])
    head: list[tuple[str, str | int]] = [
        ("QN", f"{t:%Y%m%d%H%M%S}{i % 1000:03d}"),
        ("ST", "31"),
        ("CN", "2051"),
        ("PW", _password(k)),
        ("MN", _mn(k)),
        ("Flag", 5),
    ]
    return build_frame(build_segment(head, cp))


async def _good_device(port: int, k: int, frames: int, base: datetime) -> tuple[int, set[int]]:
    """Send, wait for each 9014; (acked, the minutes acked)."""
    dev = await DeviceClient.connect("127.0.0.1", port)
    acked: set[int] = set()
    try:
        for i in range(frames):
            await dev.send(good_frame(k, i, base))
            with contextlib.suppress(TimeoutError):
                reply = await dev.read_frame(timeout_s=10)
                if reply.cn == "9014":
                    acked.add(i)
    finally:
        await dev.close()
    return len(acked), acked


async def _hostile(
    port: int, rng: random.Random, frames: int, good: int, base: datetime
) -> dict[int, set[int]]:
    """Mutated frames over four reading connections, and a fifth that never reads its socket
    (it gets frames asking for replies until its buffers are full, then is left alone).
    Returns, per good device, the minutes of the frames that got line noise: anything stored
    there is a corrupted frame taken for a good one."""
    noisy: dict[int, set[int]] = {}
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    readers = [asyncio.create_task(_drain(reader)) for reader, _ in connections]
    _, deaf = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n in range(frames):
            k = rng.randrange(good)
            # minutes before the good devices' own: what is stored there came from a mutant
            kind = rng.choice(KINDS)
            frame = mutate(rng, good_frame(k, -1 - n, base), kind)
            if kind in NOISE:
                noisy.setdefault(k, set()).add(-1 - n)
            if not deaf.is_closing() and deaf.transport.get_write_buffer_size() < 1 << 20:
                deaf.write(_heartbeat(k, n, base))  # valid: each one asks for a 9013
            _, writer = connections[n % len(connections)]
            if writer.is_closing():
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                connections[n % len(connections)] = (reader, writer)
                readers.append(asyncio.create_task(_drain(reader)))
            try:
                writer.write(frame)
                if n % 50 == 0:
                    await asyncio.wait_for(writer.drain(), 5)
            except (OSError, TimeoutError):
                pass  # closed by the gateway: it may do that to a hostile peer
    finally:
        for _, writer in [*connections, (None, deaf)]:
            writer.close()
        for task in readers:
            task.cancel()
    return noisy


def _heartbeat(k: int, n: int, base: datetime) -> bytes:
    t = base - timedelta(minutes=n)
    head: list[tuple[str, str | int]] = [
        ("QN", f"{t:%Y%m%d%H%M%S}{n % 1000:03d}"),
        ("ST", "31"),
        ("CN", "9015"),
        ("PW", _password(k)),
        ("MN", _mn(k)),
        ("Flag", 5),
    ]
    return build_frame(build_segment(head))


async def _drain(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


def _stored_values(url: str, k: int) -> dict[tuple[int, str], float]:
    """(minute, code) -> the stored mean, of every point under good device `k`'s MN."""
    rows = localstack.query(
        url, "fuzz", f"SELECT avg FROM emission WHERE mn = '{_mn(k)}' GROUP BY pollutant"
    )
    out: dict[tuple[int, str], float] = {}
    for res in rows.get("results", []):
        for series in res.get("series", []):
            code = series.get("tags", {}).get("pollutant", "")
            for t, avg in series["values"]:
                moment = datetime.fromisoformat(t.replace("Z", "+00:00"))
                out[(int(moment.timestamp() // 60), code)] = avg
    return out


def _points_of(url: str, k: int) -> int:
    rows = localstack.query(url, "fuzz", f"SELECT count(avg) FROM emission WHERE mn = '{_mn(k)}'")
    for res in rows.get("results", []):
        for series in res.get("series", []):
            return int(series["values"][0][1])
    return 0


def _series(url: str) -> int:
    rows = localstack.query(url, "fuzz", "SHOW SERIES")
    return sum(
        len(series["values"]) for res in rows.get("results", []) for series in res.get("series", [])
    )


async def _traffic(
    port: int, rng: random.Random, frames: int, good: int, per_device: int, base: datetime
) -> tuple[dict[int, set[int]], list[tuple[int, set[int]]]]:
    """The hostile frames and the good devices at once: (minutes of the noisy frames per good
    device, acks per device)."""
    await wait_port(port)
    hostile = asyncio.create_task(_hostile(port, rng, frames, good, base))
    acked = await asyncio.gather(*(_good_device(port, k, per_device, base) for k in range(good)))
    return await hostile, list(acked)


def fuzz(work: Path, *, frames: int, seed: int, good: int = 20) -> FuzzReport:
    """Run `frames` hostile frames beside `good` devices; the gateway's own InfluxDB."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(seed)
    influx = localstack.influxdb(work / "influxdb")
    influx.start()
    began = time.monotonic()
    try:
        localstack.create_database(influx.url, "fuzz")
        port, mport = localstack.free_port(), localstack.free_port()
        config = _config(work, good, port, mport, influx.url)
        os.environ["FUZZ_INFLUX_PASSWORD"] = INFLUX_PASSWORD
        os.environ["FUZZ_API_TOKENS"] = f"{API_TOKEN}:admin"
        proc = start_gateway(config, work / "gateway.log")
        asyncio.run(wait_port(port))
        rss_start = rss_mb(proc.pid)
        per_device = max(20, frames // 10 // good)
        # Beijing time of the good uploads: minutes that end a day ago, well inside the
        # plausibility window (the hostile ones go back from there)
        base = (
            datetime.now(UTC) + timedelta(hours=8) - timedelta(days=1, minutes=per_device)
        ).replace(tzinfo=None, second=0, microsecond=0)
        noisy, acked = asyncio.run(_traffic(port, rng, frames, good, per_device, base))
        expected = sum(n for n, _ in acked) * len(CODES)
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline:
            stored = sum(_points_of(influx.url, k) for k in range(good))
            if stored >= expected and metric(mport, "spool_depth_bytes") == 0:
                break
            time.sleep(0.5)
        rss_end = rss_mb(proc.pid)
        alive = proc.poll() is None
        status = stop(proc)
        base_minute = int((base - timedelta(hours=8)).replace(tzinfo=UTC).timestamp() // 60)
        good_stored, foreign = 0, 0
        for k, (_, minutes) in enumerate(acked):
            values = _stored_values(influx.url, k)
            found = {minute for minute, _ in values}
            wanted = {base_minute + i for i in minutes}
            good_stored += len(found & wanted) * len(CODES)
            # a noisy frame stored with the very values its device sent did no harm (a flip
            # in the trailer, a duplicated tail); anything else is corruption taken for data
            odd_codes = {m for m, c in values if c not in CODES}
            for i in noisy.get(k, set()):
                minute = base_minute + i
                if minute in found and (
                    minute in odd_codes
                    or any(values.get((minute, c)) != _value(k, i) for c in CODES)
                ):
                    foreign += 1
        log = (work / "gateway.log").read_text(errors="replace")
        lines = log.splitlines()
        secrets = [API_TOKEN, INFLUX_PASSWORD, *(_password(k) for k in range(good))]
        poison = work / "gw" / "poison.lp"
        store = AnomalyStore(work / "gw" / "anomalies.sqlite")
        try:
            refused = sum(
                store.query(type_=t, limit=1)[1] for t in ("unregistered_device", "auth_failure")
            )
        finally:
            store.close()
        return FuzzReport(
            frames_hostile=frames,
            frames_good=per_device * good,
            good_acked=sum(n for n, _ in acked),
            good_points_expected=expected,
            good_points_stored=min(good_stored, stored),
            corrupted_stored=foreign,
            gateway_alive=alive,
            exit_status=status,
            tracebacks=sum("Traceback" in ln or '"exception"' in ln for ln in lines),
            log_lines=len(lines),
            poison_lines=len(poison.read_text().splitlines()) if poison.exists() else 0,
            series=_series(influx.url),
            refused_anomalies=refused,
            secrets_in_log=sum(log.count(s) for s in secrets),
            rss_mb_start=rss_start,
            rss_mb_end=rss_end,
            elapsed_s=time.monotonic() - began,
        )
    finally:
        influx.stop()


def main(args: argparse.Namespace) -> int:
    report = fuzz(Path(args.workdir).resolve(), frames=args.frames, seed=args.seed)
    print(json.dumps(asdict(report), indent=2))
    problems = report.problems()
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0
