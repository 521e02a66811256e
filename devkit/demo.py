"""``pollution-gateway demo``: the local stack, the gateway and the simulator in one command,
with the anomaly stream printed as it happens and the page left open.

The simulated devices replay the day before yesterday (the baseline), then yesterday with its
scripted faults, both in Beijing time; an operator's shutdown order and the orange alert, then
red, for yesterday are declared through the API first. Then the replay catches up with today
and goes on live, so the page keeps showing devices online and today's completeness.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

from devkit import localstack
from devkit.simulator import SCRIPTED_TYPES, Simulator, owner_of, registry_toml
from devkit.simulator.script import ORANGE, RED, SHUTDOWN_FROM
from gateway.anomalies.messages import summary
from gateway.anomalies.model import AnomalyEvent
from gateway.config import load_config
from gateway.registry import Registry
from gateway.supervisor import Gateway

BEIJING = ZoneInfo("Asia/Shanghai")
TOKENS_ENV = "DEMO_GATEWAY_API_TOKENS"


def _config(work: Path, args: argparse.Namespace, influx_url: str, mqtt_port: int) -> Path:
    (work / "registry.toml").write_text(
        registry_toml(args.enterprises, logger_offline_after_s=args.offline_after_s)
    )
    config = work / "gateway.toml"
    config.write_text(f"""[gateway]
data_dir = "gateway"
log_format = "json"
log_level = "warning"
[hj212]
listen = "127.0.0.1:{args.hj212_port}"
[mqtt]
enabled = true
port = {mqtt_port}
client_id = "demo-gateway"
[influx]
url = "{influx_url}"
database = "pollution"
flush_interval_s = 0.5
[api]
listen = "127.0.0.1:{args.api_port}"
tokens_env = "{TOKENS_ENV}"
[metrics]
enabled = false
""")
    return config


def regime_for(day: datetime, enterprises: int) -> list[tuple[str, dict[str, object]]]:
    """The operator's decisions for the scripted day: a shutdown of line L1 from 10:00 at
    every enterprise, an orange alert over the region from 12:00 to 20:00 and a red one from
    20:00 to 22:00 (the hours are the simulator's `SHUTDOWN_FROM`, `ORANGE` and `RED`)."""

    def at(hour: int) -> str:
        return (day + timedelta(hours=hour)).replace(tzinfo=BEIJING).isoformat()

    out: list[tuple[str, dict[str, object]]] = [
        (
            "orders",
            {
                "kind": "shutdown",
                "enterprise": f"SIM{k}",
                "lines": ["L1"],
                "starts_at": at(SHUTDOWN_FROM),
                "ends_at": at(24),
                "note": "shutdown order (demo)",
            },
        )
        for k in range(enterprises)
    ]
    for level, (start, end) in (("orange", ORANGE), ("red", RED)):
        alert: dict[str, object] = {
            "level": level,
            "regions": ["sim-city"],
            "starts_at": at(start),
            "ends_at": at(end),
            "note": f"{level} heavy-pollution alert (demo)",
        }
        out.append(("alerts", alert))
    return out


async def _declare(base: str, token: str, day: datetime, enterprises: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path, body in regime_for(day, enterprises):
            async with http.post(f"{base}/api/v1/{path}", json=body) as response:
                response.raise_for_status()


class Terminal:
    """Anomaly lines as they come (the officers' sentence, in Chinese), and a progress line
    kept at the bottom."""

    def __init__(self, registry: Callable[[], Registry] | None = None) -> None:
        self.registry = registry
        self.seen: dict[str, set[str]] = {}
        self.events = 0
        self.stage = ""

    def anomaly(self, event: AnomalyEvent) -> None:
        a = event.anomaly
        self.seen.setdefault(owner_of(a.enterprise, a.subject), set()).add(a.type)
        self.events += 1
        print(
            f"\r\033[K[{event.event:>7}] {a.severity:<7} {a.type:<27} {a.enterprise:<12} "
            f"{summary(a, 'zh', self.registry() if self.registry else None)}",
            flush=True,
        )

    def progress(self, sim: Simulator, at: datetime) -> None:
        print(
            f"\r\033[K... {self.stage} {at:%Y-%m-%d %H:%M} Beijing time | {sim.frames} frames, "
            f"{sim.messages} MQTT messages | {self.events} anomaly events",
            end="",
            flush=True,
        )

    def missing(self, enterprises: int) -> dict[str, list[str]]:
        out = {}
        for k in range(enterprises):
            lacking = sorted(set(SCRIPTED_TYPES) - self.seen.get(f"SIM{k}", set()))
            if lacking:
                out[f"SIM{k}"] = lacking
        return out


async def _demo(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    influx = localstack.influxdb(work / "influxdb")
    broker = localstack.mosquitto(work / "mosquitto")
    influx.start()
    broker.start()
    token = secrets.token_urlsafe(12)
    os.environ[TOKENS_ENV] = f"{token}:admin"
    gw = Gateway(load_config(_config(work, args, influx.url, broker.port)))
    term = Terminal(gw.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gw.start()
        assert gw.anomalies is not None and gw.mqtt is not None and gw.api is not None
        gw.anomalies.add_listener(term.anomaly)
        await asyncio.wait_for(gw.mqtt.connected.wait(), 15)
        today = datetime.now(BEIJING).replace(
            tzinfo=None, hour=0, minute=0, second=0, microsecond=0
        )
        day = today - timedelta(days=1)
        base = f"http://127.0.0.1:{gw.api.port}"
        await _declare(base, token, day, args.enterprises)
        print(
            f"declared through the API: shutdown of line L1 at every plant from {day:%Y-%m-%d} "
            f"{SHUTDOWN_FROM:02d}:00, orange alert over sim-city {ORANGE[0]:02d}:00-"
            f"{ORANGE[1]:02d}:00, then red until {RED[1]:02d}:00 (Beijing time)"
        )
        page = f"{base}/#token={token}"
        print(f"page: {page}", flush=True)
        async with Simulator(
            enterprises=args.enterprises,
            hj212=("127.0.0.1", gw.hj212.port),
            mqtt=("127.0.0.1", broker.port),
            speedup=args.speedup,
            on_progress=term.progress,
        ) as sim:
            missing = await _play(sim, args, term, today, page, stop)  # until done or Ctrl-C
        return 1 if missing and args.exit else 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await gw.shutdown()
        broker.stop()
        influx.stop()


async def _play(
    sim: Simulator,
    args: argparse.Namespace,
    term: Terminal,
    today: datetime,
    page: str,
    stop: asyncio.Event,
) -> dict[str, list[str]]:
    """Baseline day, scripted day, the wait for the last types, then live until `stop`; the
    scripted types that did not appear. Stopping cancels whatever is being played."""
    alive: asyncio.Task[None] | None = None
    live: asyncio.Task[None] | None = None
    missing = term.missing(args.enterprises)
    try:
        term.stage = "baseline day"
        await _until(stop, sim.play_day(today - timedelta(days=2), scripted=False, paced=False))
        term.stage = "scripted day"
        await _until(stop, sim.play_day(today - timedelta(days=1), scripted=True))
        if stop.is_set():
            print("\r\033[Kstopped", flush=True)
            return missing
        alive = asyncio.create_task(sim.keep_alive(stop, args.offline_after_s / 3))
        for _ in range(int(args.wait_s * 10)):
            if not term.missing(args.enterprises) or stop.is_set():
                break
            await asyncio.sleep(0.1)
        missing = term.missing(args.enterprises)
        print(
            "\r\033[Kevery scripted anomaly type appeared"
            if not missing
            else f"\r\033[Kmissing: {missing}",
            flush=True,
        )
        if not args.exit:
            print(f"the replay goes on live; page: {page}  (Ctrl-C to stop)", flush=True)
            term.stage = "live"
            live = asyncio.create_task(_live(sim, today, stop))
            await _until(stop, live)
    finally:
        stop.set()
        for task in (live, alive):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (live, alive) if t is not None), return_exceptions=True)
    return missing


async def _until(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run `work` until it ends or `stop` is set (then it is cancelled); its errors propagate."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopped):
            t.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    error = task.exception() if task.done() and not task.cancelled() else None
    if error is not None:
        raise error


async def _live(sim: Simulator, today: datetime, stop: asyncio.Event) -> None:
    """Normal days from today's midnight: at the speed-up until the present, then on the
    clock."""
    day = today
    while not stop.is_set():
        await sim.play_day(day, scripted=False, not_before=_beijing_now)
        day += timedelta(days=1)


def _beijing_now() -> datetime:
    return datetime.now(BEIJING).replace(tzinfo=None)


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_demo(args))
    except localstack.LocalStackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
