"""``pollution-gateway demo``: the local stack, the gateway and the simulator in one command,
with the anomaly stream printed as it happens and the page left open."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import sys
from datetime import datetime
from pathlib import Path

from . import localstack
from .anomalies.model import AnomalyEvent
from .config import load_config
from .regime import AlertSpec, OrderSpec
from .simulator import registry_toml, run_day
from .supervisor import Gateway

EXPECTED = (
    "over_limit",
    "data_gap",
    "treatment_not_running",
    "production_during_shutdown",
    "banned_vehicle_entry",
    "auth_failure",
)


def _config(work: Path, influx_url: str, mqtt_port: int, api_port: int, enterprises: int) -> Path:
    (work / "registry.toml").write_text(registry_toml(enterprises))
    config = work / "gateway.toml"
    config.write_text(f"""[gateway]
data_dir = "gateway"
log_format = "json"
log_level = "warning"
[hj212]
listen = "127.0.0.1:0"
[mqtt]
enabled = true
port = {mqtt_port}
client_id = "demo-gateway"
[influx]
url = "{influx_url}"
database = "demo"
flush_interval_s = 0.5
[api]
listen = "127.0.0.1:{api_port}"
tokens_env = "DEMO_GATEWAY_API_TOKENS"
[metrics]
enabled = false
""")
    return config


async def _demo(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    influx = localstack.influxdb(work / "influxdb")
    broker = localstack.mosquitto(work / "mosquitto")
    influx.start()
    broker.start()
    token = secrets.token_urlsafe(12)
    os.environ["DEMO_GATEWAY_API_TOKENS"] = f"{token}:admin"
    config = _config(work, influx.url, broker.port, args.api_port, args.enterprises)
    gw = Gateway(load_config(config))
    seen: dict[str, set[str]] = {}

    def show(event: AnomalyEvent) -> None:
        a = event.anomaly
        seen.setdefault(a.enterprise, set()).add(a.type)
        print(
            f"\r[{event.event:>7}] {a.severity:<7} {a.type:<27} {a.enterprise:<6} {a.summary}",
            flush=True,
        )

    try:
        await gw.start()
        assert gw.anomalies is not None and gw.regime is not None and gw.mqtt is not None
        gw.anomalies.add_listener(show)
        await asyncio.wait_for(gw.mqtt.connected.wait(), 15)
        day = datetime(2026, 1, 15)
        for k in range(args.enterprises):
            gw.regime.add_order(
                OrderSpec.model_validate(
                    {
                        "kind": "shutdown",
                        "enterprise": f"SIM{k}",
                        "lines": ["L1"],
                        "starts_at": "2026-01-15T10:00:00+08:00",
                        "ends_at": "2026-01-16T00:00:00+08:00",
                        "note": "demo order",
                    }
                )
            )
        gw.regime.add_alert(
            AlertSpec.model_validate(
                {
                    "level": "orange",
                    "regions": ["sim-city"],
                    "starts_at": "2026-01-15T14:00:00+08:00",
                    "ends_at": "2026-01-15T18:00:00+08:00",
                    "note": "demo alert",
                }
            )
        )
        print("declared: shutdown of line L1 from 10:00, orange alert 14:00-18:00 (2026-01-15)")
        assert gw.api is not None
        page = f"http://127.0.0.1:{gw.api.port}/#token={token}"
        print(f"page: {page}", flush=True)

        def progress(label: str) -> None:
            print(f"\r... {label:<60}", end="", flush=True)

        await run_day(
            enterprises=args.enterprises,
            day=day,
            hj212=("127.0.0.1", gw.hj212.port),
            mqtt=("127.0.0.1", broker.port),
            speed=args.step_s,
            on_step=progress,
        )
        for _ in range(100):
            if all(set(EXPECTED) <= seen.get(f"SIM{k}", set()) for k in range(args.enterprises)):
                break
            await asyncio.sleep(0.1)
        missing = {
            f"SIM{k}": sorted(set(EXPECTED) - seen.get(f"SIM{k}", set()))
            for k in range(args.enterprises)
        }
        missing = {k: v for k, v in missing.items() if v}
        print("\nevery scripted anomaly type appeared" if not missing else f"\nmissing: {missing}")
        if args.exit:
            return 1 if missing else 0
        print(f"the gateway keeps running; page: {page}  (Ctrl-C to stop)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        await gw.shutdown()
        broker.stop()
        influx.stop()


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_demo(args))
    except localstack.LocalStackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
