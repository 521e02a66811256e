"""``pollution-gateway bench-thingsboard``: the MQTT path beside a plain paho consumer and the
ThingsBoard IoT gateway (``thingsboard-gateway``, in a venv of its own), on one load.

One Mosquitto holds the devices' messages, the same ones ``pollution-gateway bench`` publishes
(QoS 1 power readings on ``bench/power/BENCH/M1``). Each consumer drains the same backlog: its
persistent session is made, N readings are queued for it while it is away, then it connects.

- plain paho: one client reading the backlog and checking every reading;
- ours: the gateway into InfluxDB, every point read back and checked;
- ThingsBoard: its MQTT connector on the devices' broker, its platform side on a second local
  Mosquitto that stands in for ThingsBoard (it answers the gateway's ``getSessionLimits`` call,
  with no rate limits); every reading on ``v1/gateway/telemetry`` is checked. Once per storage
  (``file``, ``sqlite``, ``memory``).

CPU per reading is process CPU (``/proc``) less that of an identical idle start-up; for paho
the CPU of its network thread.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devkit import localstack
from devkit.bench_mqtt import _message, _publish
from devkit.benchkit import count_measurement, write_config
from devkit.process import start_gateway, stop, wait_port

TB_VERSION = "3.8.5"
TOPIC = "bench/power/BENCH/M1"
DEVICE = "BENCH/M1"  # the device name the connector maps TOPIC to
STORAGES = ("file", "sqlite", "memory")
CONFIG_FILES = ("tb_gateway.json", "mqtt.json", "logs.json")
FIELDS = ("p_kw", "kwh")
# What the stand-in platform answers to getSessionLimits: no rate limits, 64 KiB payloads, an
# in-flight window as wide as the gateway's own [mqtt] max_inflight.
SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 1000,
    "rateLimits": {},
    "gatewayRateLimits": {},
}
# Runs thingsboard_gateway's own entry point, without its update check (a POST to the vendor),
# writing the time its MQTT connector's session comes up (CONNACK) to $BENCH_CONNECTED_FILE.
LAUNCHER = """
import os, time
from thingsboard_gateway.tb_utility import tb_loader, tb_updater
tb_updater.TBUpdater.check_for_new_version = lambda self: None
_import_module = tb_loader.TBModuleLoader.import_module

def on_connect_marked(on_connect):
    def marked(self, *args, **kwargs):
        with open(os.environ["BENCH_CONNECTED_FILE"], "w") as mark:
            mark.write(repr(time.time()))
        return on_connect(self, *args, **kwargs)
    return marked

def import_module(extension_type, module_name):
    found = _import_module(extension_type, module_name)
    if getattr(found, "__name__", "") == "MqttConnector" and not hasattr(found, "bench_marked"):
        found._on_connect = on_connect_marked(found._on_connect)
        found.bench_marked = True
    return found

tb_loader.TBModuleLoader.import_module = staticmethod(import_module)
from thingsboard_gateway.tb_gateway import daemon
daemon()
"""
TOKEN = "bench-gateway-token"  # the gateway's access token: its user name on the platform
# On a real platform the gateway's own calls are not echoed back to it: an MQTT broker would
# deliver its getSessionLimits request to its own subscription, so it reads only answers.
PLATFORM_ACL = f"""user {TOKEN}
topic write v1/#
topic read v1/devices/me/rpc/response/#
topic read v1/devices/me/attributes
topic read v1/devices/me/attributes/response/#
topic read v1/gateway/rpc
topic read v1/gateway/attributes
topic read v1/gateway/attributes/response
user bench-platform
topic readwrite v1/#
"""
# Variables the ThingsBoard gateway reads to override its config (tb_utility.py).
_TB_ENV = {"host", "port", "type", "accessToken", "caCert", "privateKey", "cert", "clientId"}
_TB_ENV |= {"username", "password", "proxy_host", "proxy_port"}


def expected(i: int) -> tuple[int, dict[str, float]]:
    """Reading `i` of the load as published: its time (epoch ms) and values."""
    body = json.loads(_message(i))
    ms = int(datetime.fromisoformat(body["time"]).timestamp() * 1000)
    return ms, {name: float(body[name]) for name in FIELDS}


_BASE_MS = expected(0)[0]


class Tally:
    """Readings of the load seen by a consumer, each checked against what was published."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.verified = 0
        self.duplicates = 0
        self.wrong = 0
        self.foreign = 0  # readings of other devices
        self._seen: dict[int, set[str]] = {}
        self._done = bytearray(count)

    @property
    def lost(self) -> int:
        return self.count - self.verified

    def entry(self, ts_ms: int, values: dict[str, Any]) -> bool:
        """One reading (time, values); True when it completes a reading not seen before."""
        i, rest = divmod(ts_ms - _BASE_MS, 1000)
        if rest or not 0 <= i < self.count:
            self.wrong += 1
            return False
        if self._done[i]:
            self.duplicates += 1
            return False
        want = expected(i)[1]
        fields = self._seen.setdefault(i, set())
        for name, value in values.items():
            if name in want and isinstance(value, int | float) and float(value) == want[name]:
                fields.add(name)
            else:
                self.wrong += 1
        if len(fields) < len(FIELDS):
            return False
        del self._seen[i]
        self._done[i] = 1
        self.verified += 1
        return True

    def telemetry(self, payload: bytes | bytearray, device: str = DEVICE) -> int:
        """A ``v1/gateway/telemetry`` message, ``{device: [{"ts", "values"}, ...]}``; the
        readings it completed."""
        completed = 0
        for name, entries in json.loads(payload).items():
            if name != device:
                self.foreign += len(entries)
                continue
            for item in entries:
                completed += self.entry(int(item["ts"]), item.get("values", {}))
        return completed

    def published(self, payload: bytes | bytearray) -> int:
        """A message as the devices published it (``{"time", "p_kw", "kwh"}``)."""
        body = json.loads(payload)
        ms = int(datetime.fromisoformat(body["time"]).timestamp() * 1000)
        return int(self.entry(ms, {name: body[name] for name in FIELDS if name in body}))


@dataclass
class Result:
    """One consumer's drain: readings/s, CPU µs per reading, what arrived."""

    name: str
    rate: float
    cpu_us: float
    tally: Tally
    notes: dict[str, float] = field(default_factory=dict)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def forget_session(port: int, client_id: str) -> None:
    """Drop a persistent session (and its queued messages) from the broker."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", port)
    client.loop(1.0)
    client.disconnect()


# --- the ThingsBoard gateway's files ---------------------------------------------------------


def connector_config(broker_port: int, client_id: str) -> dict[str, Any]:
    """The MQTT connector: a persistent session on the devices' broker, TOPIC's readings as
    timeseries p_kw and kwh at the reading's own time."""
    series = [
        {"type": "double", "key": name, "value": "${" + name + "}", "tsField": "${time}"}
        for name in FIELDS
    ]
    return {
        "broker": {
            "name": "devices",
            "host": "127.0.0.1",
            "port": broker_port,
            "clientId": client_id,
            "version": 4,
            "cleanSession": False,
            "keepAlive": 60,
            "maxMessageNumberPerWorker": 10,
            "maxNumberOfWorkers": 100,
            "security": {"type": "anonymous"},
        },
        "mapping": [
            {
                "topicFilter": "bench/power/+/+",
                "subscriptionQos": 1,
                "converter": {
                    "type": "json",
                    "deviceInfo": {
                        "deviceNameExpressionSource": "topic",
                        "deviceNameExpression": "bench/power/([^/]+/[^/]+)$",
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": "meter",
                    },
                    "sendDataOnlyOnChange": False,
                    "timeout": 60000,
                    "attributes": [],
                    "timeseries": series,
                },
            }
        ],
        "requestsMapping": {},
        "logLevel": "WARNING",
    }


def storage_config(kind: str, data: Path, count: int, read_records: int) -> dict[str, Any]:
    """``storage`` of tb_gateway.json: room for `count` records, `read_records` per pack sent.
    ``file`` keeps the default fsync after every record."""
    if kind == "memory":
        return {
            "type": "memory",
            "read_records_count": read_records,
            "max_records_count": max(100_000, 2 * count),
        }
    if kind == "file":
        return {
            "type": "file",
            "data_folder_path": f"{data}/",
            "max_file_count": max(10, count // 10_000 + 2),
            "max_records_per_file": 10_000,
            "max_read_records_count": read_records,
            "max_records_between_fsync": 1,
        }
    if kind == "sqlite":
        return {
            "type": "sqlite",
            "data_file_path": f"{data}/",
            "messages_ttl_check_in_hours": 1,
            "messages_ttl_in_days": 7,
            "max_read_records_count": read_records,
        }
    raise ValueError(f"unknown storage {kind!r}: one of {', '.join(STORAGES)}")


def gateway_config(platform_port: int, storage: dict[str, Any]) -> dict[str, Any]:
    """tb_gateway.json: the platform on loopback, remote control and statistics off."""
    return {
        "thingsboard": {
            "host": "127.0.0.1",
            "port": platform_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60,
            "handleDeviceRenaming": True,
            "security": {"type": "accessToken", "accessToken": TOKEN},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": storage,
        "grpc": {"enabled": False},
        "connectors": [{"type": "mqtt", "name": "devices", "configuration": "mqtt.json"}],
    }


def logs_config() -> dict[str, Any]:
    """logs.json: warnings and errors to stdout only (the gateway's log file)."""
    names = ("service", "connector", "converter", "tb_connection", "storage", "extension")
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"stdout": handler},
        "loggers": {
            name: {"handlers": ["stdout"], "level": "WARNING", "propagate": False}
            for name in (*names, "database")
        },
        "root": {"level": "WARNING", "handlers": ["stdout"]},
    }


def write_tb_config(
    folder: Path, broker_port: int, platform_port: int, client_id: str, storage: dict[str, Any]
) -> Path:
    """The three files the ThingsBoard gateway reads from its config folder."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = (
        gateway_config(platform_port, storage),
        connector_config(broker_port, client_id),
        logs_config(),
    )
    for name, content in zip(CONFIG_FILES, contents, strict=True):
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")
    return folder


def tb_environment(config_dir: Path) -> dict[str, str]:
    """The environment to run it in: its config folder; none of the variables that would
    override that config; any HTTP(S) request sent to a closed loopback port."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _TB_ENV and not k.startswith("TB_GW_") and k.lower() != "no_proxy"
    }
    env["TB_GW_CONFIG_DIR"] = f"{config_dir}/"
    env["BENCH_CONNECTED_FILE"] = str(config_dir / "connected-at")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"
    return env


def default_venv() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pollution-gateway" / "tb-venv"


def tb_venv(venv: Path) -> Path:
    """A venv holding thingsboard-gateway TB_VERSION (made or reused); its python."""
    python = venv / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import importlib.metadata as m; print(m.version('thingsboard-gateway'))",
    ]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == TB_VERSION:
            return python
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing thingsboard-gateway=={TB_VERSION} into {venv}", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"thingsboard-gateway=={TB_VERSION}"],
        check=True,
    )
    return python


def platform_broker(folder: Path) -> localstack.ManagedProcess:
    """The stand-in platform's Mosquitto: the local-stack broker with PLATFORM_ACL."""
    broker = localstack.mosquitto(folder)
    (folder / "acl").write_text(PLATFORM_ACL)
    with (folder / "mosquitto.conf").open("a") as conf:
        conf.write(f"acl_file {(folder / 'acl').resolve()}\n")
    return broker


# --- the consumers ---------------------------------------------------------------------------


class Platform:
    """The stand-in ThingsBoard: a client of the platform broker that answers getSessionLimits
    and tallies ``v1/gateway/telemetry``."""

    def __init__(self, port: int, count: int) -> None:
        self.tally = Tally(count)
        self.pid = 0  # the gateway's, read when it connects and when the last reading arrives
        self.connected = threading.Event()
        self.connected_cpu = 0.0
        self.progress = time.time()
        self.first = self.last = 0.0
        self.last_cpu = 0.0
        self.done = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-platform")
        self._client.username_pw_set("bench-platform")
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe("v1/#", qos=1)
        self._client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise RuntimeError(f"the platform broker on port {port} did not take a subscription")

    def _on_message(self, client: paho.Client, _: object, message: paho.MQTTMessage) -> None:
        topic = message.topic
        if topic.startswith("v1/devices/me/rpc/request/"):
            if json.loads(message.payload).get("method") == "getSessionLimits":
                reply = topic.replace("/request/", "/response/")
                client.publish(reply, json.dumps(SESSION_LIMITS), qos=1)
                if not self.connected.is_set():
                    self.connected_cpu = cpu_seconds(self.pid)
                    self.connected.set()
            return
        if topic != "v1/gateway/telemetry":
            return
        if self.tally.telemetry(message.payload):
            now = time.time()
            self.progress = now
            if not self.first:
                self.first = now
            self.last = now
            if self.tally.verified == self.tally.count:
                self.last_cpu = cpu_seconds(self.pid)
                self.done.set()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _start_tb(python: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(python), "-c", LAUNCHER],
        cwd=config,
        env=tb_environment(config),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_connected(platform: Platform, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.perf_counter() + 120
    while not platform.connected.wait(0.5):
        if proc.poll() is not None or time.perf_counter() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the ThingsBoard gateway did not reach the platform:\n{tail}")


def thingsboard_run(
    python: Path, work: Path, broker: int, platform_port: int, kind: str, count: int, reads: int
) -> Result:
    """One storage: make the session, queue `count` readings, drain them to the platform."""
    folder = work / f"tb-{kind}"
    shutil.rmtree(folder, ignore_errors=True)
    client_id = f"bench-tb-{kind}"
    storage = storage_config(kind, folder / "data", count, reads)
    config = write_tb_config(folder, broker, platform_port, client_id, storage)
    log = folder / "gateway.log"
    setup = Platform(platform_port, count)
    proc = _start_tb(python, config, log)
    setup.pid = proc.pid
    try:
        _wait_connected(setup, proc, log)
        idle_cpu = setup.connected_cpu
        time.sleep(3.0)  # its connector subscribes on a thread of its own
    finally:
        stop(proc)
        setup.close()
    _publish(broker, TOPIC, count)
    mark = config / "connected-at"
    mark.unlink(missing_ok=True)
    platform = Platform(platform_port, count)
    proc = _start_tb(python, config, log)
    platform.pid = proc.pid
    started = time.time()
    try:
        _wait_connected(platform, proc, log)
        while not platform.done.wait(0.5):
            stalled = platform.first and time.time() - platform.progress > 60
            if proc.poll() is not None or stalled or time.time() - started > 1800:
                break
        if not platform.last_cpu:
            platform.last_cpu = cpu_seconds(proc.pid)
    finally:
        stop(proc)
        platform.close()
        forget_session(broker, client_id)
    tally = platform.tally
    connected = float(mark.read_text())
    span = platform.last - platform.first
    return Result(
        f"ThingsBoard gateway {TB_VERSION}, {kind} storage",
        tally.verified / (platform.last - connected),
        (platform.last_cpu - idle_cpu) / max(1, tally.verified) * 1e6,
        tally,
        {
            "process_start_to_session_s": connected - started,
            "session_to_first_on_platform_s": platform.first - connected,
            "first_to_last_on_platform_per_s": (tally.verified - 1) / span if span > 0 else 0.0,
            "startup_cpu_s": idle_cpu,
        },
    )


def paho_run(broker: int, count: int) -> Result:
    """A plain paho consumer draining the backlog, parsing and checking every message."""
    client_id = "bench-plain-paho"
    setup = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    setup.connect("127.0.0.1", broker)
    setup.subscribe(TOPIC, qos=1)
    setup.loop(1.0)
    setup.disconnect()
    _publish(broker, TOPIC, count)
    tally = Tally(count)
    marks: dict[str, float] = {}
    consumer = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)

    def on_connect(*_: object) -> None:
        marks["connected"] = time.time()

    def on_message(client: paho.Client, _: object, message: paho.MQTTMessage) -> None:
        if tally.published(message.payload):
            marks.setdefault("first", time.time())
            if tally.verified == count:
                marks["last"] = time.time()
                marks["cpu"] = time.thread_time() - marks["cpu0"]
                client.disconnect()

    def drain() -> None:
        marks["cpu0"] = time.thread_time()
        consumer.connect("127.0.0.1", broker)
        consumer.loop_forever()

    consumer.on_connect = on_connect
    consumer.on_message = on_message
    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    thread.join(600)
    forget_session(broker, client_id)
    span = marks.get("last", 0.0) - marks.get("connected", 0.0)
    return Result(
        "plain paho consumer (json.loads, every reading checked)",
        tally.verified / span if span > 0 else 0.0,
        marks.get("cpu", float("nan")) / max(1, tally.verified) * 1e6,
        tally,
    )


def _stored(url: str, count: int) -> Tally:
    """Every power point of the load read back from InfluxDB, checked."""
    tally = Tally(count)
    step = 10_000
    for start in range(0, count, step):
        lo, hi = _BASE_MS + start * 1000, _BASE_MS + min(count, start + step) * 1000
        q = f"SELECT p_kw, kwh FROM power WHERE time >= {lo}ms AND time < {hi}ms"
        series = localstack.query(url, "bench", q)["results"][0].get("series", [])
        for moment, p_kw, kwh in series[0]["values"] if series else []:
            ms = int(datetime.fromisoformat(moment).timestamp() * 1000)
            tally.entry(ms, {"p_kw": p_kw, "kwh": kwh})
    return tally


async def ours_run(work: Path, influx_url: str, broker: int, count: int) -> Result:
    """The gateway's MQTT path into InfluxDB, as ``pollution-gateway bench`` runs it: timed from
    its ports answering to the last point counted back."""
    shutil.rmtree(work / "gw", ignore_errors=True)
    port, mport = localstack.free_port(), localstack.free_port()
    config = write_config(work, port, influx_url, 1, mport, mqtt_port=broker)
    log = work / "gateway-mqtt.log"
    gateway = start_gateway(config, log)  # creates the persistent session
    await wait_port(port)
    idle_cpu = cpu_seconds(gateway.pid)
    await asyncio.sleep(2.0)
    stop(gateway)
    await asyncio.to_thread(_publish, broker, TOPIC, count)
    before = count_measurement(influx_url, "power", "p_kw")
    gateway = start_gateway(config, log)
    try:
        await wait_port(port)
        started = time.perf_counter()
        stored = before
        while stored - before < count and time.perf_counter() - started < 900:
            await asyncio.sleep(0.2)
            stored = count_measurement(influx_url, "power", "p_kw")
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(gateway.pid)
    finally:
        stop(gateway)
    forget_session(broker, "bench-gateway")
    tally = await asyncio.to_thread(_stored, influx_url, count)
    return Result(
        "pollution-gateway MQTT -> InfluxDB",
        (stored - before) / elapsed,
        (cpu - idle_cpu) / max(1, tally.verified) * 1e6,
        tally,
        {"startup_cpu_s": idle_cpu},
    )


# --- the run ---------------------------------------------------------------------------------


async def _round(
    args: argparse.Namespace, python: Path, work: Path, devices: int, platform: int, number: int
) -> list[Result]:
    """Each consumer once, on a fresh InfluxDB."""
    n = args.readings
    results = [await asyncio.to_thread(paho_run, devices, n)]
    influx = localstack.influxdb(work / f"influxdb-{number}")
    influx.start()
    try:
        results.append(await ours_run(work, influx.url, devices, n))
    finally:
        influx.stop()
    for kind in args.storages:
        run = functools.partial(
            thingsboard_run, python, work, devices, platform, kind, n, args.tb_reads
        )
        results.append(await asyncio.to_thread(run))
    return results


async def _bench(args: argparse.Namespace) -> list[list[Result]]:
    venv = Path(args.tb_venv).expanduser() if args.tb_venv else default_venv()
    python = await asyncio.to_thread(tb_venv, venv)
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    devices = localstack.mosquitto(work / "mosquitto")
    platform = platform_broker(work / "platform-mosquitto")
    rounds: list[list[Result]] = []
    devices.start()
    try:
        platform.start()
        try:
            for number in range(1, args.rounds + 1):
                rounds.append(await _round(args, python, work, devices.port, platform.port, number))
                print(f"round {number}\n{table(rounds[-1])}", flush=True)
        finally:
            platform.stop()
    finally:
        devices.stop()
    return rounds


def median(rounds: list[list[Result]]) -> list[Result]:
    """Per consumer, the median readings/s and CPU per reading of the rounds; the tally of its
    round with the most readings lost."""
    return [
        Result(
            runs[0].name,
            statistics.median(r.rate for r in runs),
            statistics.median(r.cpu_us for r in runs),
            max((r.tally for r in runs), key=lambda t: (t.lost, t.duplicates + t.wrong)),
        )
        for runs in zip(*rounds, strict=True)
    ]


def table(results: list[Result]) -> str:
    """The figures, one line per consumer, then ours / ThingsBoard."""
    width = max(len(r.name) for r in results)
    lines = [
        f"{'consumer':<{width}}  {'readings/s':>10}  {'CPU µs/reading':>14}  "
        f"{'verified':>15}  {'lost':>6}  {'dup':>6}  {'wrong':>5}"
    ]
    for r in results:
        t = r.tally
        lines.append(
            f"{r.name:<{width}}  {r.rate:>10,.0f}  {r.cpu_us:>14,.1f}  "
            f"{f'{t.verified:,}/{t.count:,}':>15}  {t.lost:>6,}  {t.duplicates:>6,}  {t.wrong:>5,}"
        )
    ours = next((r for r in results if r.name.startswith("pollution-gateway")), None)
    for r in results:
        if ours is not None and r.name.startswith("ThingsBoard") and r.rate > 0:
            lines.append(
                f"ours / {r.name}: throughput {ours.rate / r.rate:.2f}x,"
                f" CPU per reading {r.cpu_us / ours.cpu_us:.2f}x less"
            )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}", flush=True)
    print(
        f"{args.readings:,} readings per consumer; ThingsBoard gateway {TB_VERSION},"
        f" {args.tb_reads} records per pack, storages {args.storage}",
        flush=True,
    )
    args.storages = [k.strip() for k in args.storage.split(",") if k.strip()]
    for kind in args.storages:
        storage_config(kind, Path("."), 1, 1)  # an unknown name fails before anything starts
    rounds = asyncio.run(_bench(args))
    for number, results in enumerate(rounds, 1):
        for r in results:
            for name, value in r.notes.items():
                print(f"round {number}, {r.name}: {name} {value:,.2f}")
    if len(rounds) > 1:
        print(f"median of {len(rounds)} rounds (lost, dup, wrong: the worst round)")
        print(table(median(rounds)))
    print("load average at the end " + "/".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0 if all(r.tally.lost == 0 for results in rounds for r in results) else 1
