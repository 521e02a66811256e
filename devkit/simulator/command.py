"""``pollution-gateway simulate``: the simulated enterprises against a running gateway (for
demonstrations and load tests); `--print-registry` gives the registry the gateway needs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, timedelta

from devkit.simulator.play import Simulator
from devkit.simulator.registry import registry_toml


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _run(args: argparse.Namespace) -> int:
    scripted = (
        datetime.combine(date.fromisoformat(args.day), datetime.min.time())
        if args.day
        else datetime.combine(date.today() - timedelta(days=1), datetime.min.time())
    )

    def progress(sim: Simulator, at: datetime) -> None:
        print(f"\r{at:%Y-%m-%d %H:%M} | {sim.frames} frames, {sim.messages} messages", end="")

    async with Simulator(
        enterprises=args.enterprises,
        hj212=_address(args.hj212),
        mqtt=_address(args.mqtt),
        prefix=args.prefix,
        speedup=args.speedup,
        on_progress=progress,
    ) as sim:
        for back in range(args.normal_days, 0, -1):
            await sim.play_day(scripted - timedelta(days=back), scripted=False)
        await sim.play_day(scripted, scripted=True)
        backfilled = sum(len(logger.backfilled) for logger in sim.loggers.values())
        print(
            f"\n{sim.frames} frames, {sim.messages} MQTT messages, {backfilled} hours back-filled"
        )
    return 0


def main(args: argparse.Namespace) -> int:
    if args.print_registry:
        sys.stdout.write(registry_toml(args.enterprises))
        return 0
    try:
        return asyncio.run(_run(args))
    except (OSError, ConnectionError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
