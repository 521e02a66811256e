"""The simulator against a running gateway (real sockets, Mosquitto and InfluxDB): a baseline
day and the scripted day give exactly the anomalies the plant expects, with their start and
end, and nothing else; 2005 (bare), encrypted, split, MODBUS-checked and back-filled uploads all
land in InfluxDB."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from devkit import localstack
from devkit.demo import regime_for
from devkit.simulator import Simulator, registry_toml
from devkit.simulator.devices import COD, SO2, SO2_2005
from devkit.simulator.expected import Expected, expected_anomalies
from gateway.anomalies.model import Anomaly
from gateway.config import load_config
from gateway.regime import AlertSpec, OrderSpec
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config

DAY = datetime(2026, 3, 12)
ENTERPRISES = 2
SETTLED_S = 2.0  # the anomalies are settled once unchanged this long


def seen(items: list[Anomaly]) -> list[Expected]:
    found = [Expected.of(a.enterprise, a.type, a.subject, a.started_at, a.ended_at) for a in items]
    return sorted(found, key=Expected.key)


def comparison(expected: list[Expected], items: list[Anomaly]) -> str:
    """Both lists, then what differs (- expected only, + produced only, with its summary and
    exact times)."""
    produced = seen(items)
    lines = ["expected:", *map(str, expected), "produced:", *map(str, produced), "differences:"]
    lines += [f"- {e}" for e in expected if e not in produced]
    for a in items:
        if (p := seen([a])[0]) not in expected:
            lines += [f"+ {p}", f"    {a.started_at} -> {a.ended_at}: {a.summary}"]
    return "\n".join(lines)


async def test_two_days_give_exactly_the_expected_anomalies_and_store_every_upload(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    config = write_config(
        tmp_path / "gw",
        influx.url,
        database,
        registry=registry_toml(ENTERPRISES, logger_offline_after_s=30),
        mqtt={
            "enabled": True,
            "port": mosquitto.port,
            "topic_prefix": "sim1",
            "client_id": "gw-sim1",
        },
    )
    expected = sorted(
        (e for k in range(ENTERPRISES) for e in expected_anomalies(DAY, k)), key=Expected.key
    )
    offline = {e.subject for e in expected if e.type == "device_offline"}
    gw = Gateway(load_config(config))
    await gw.start()
    try:
        assert gw.regime is not None and gw.anomalies is not None and gw.mqtt is not None
        await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
        alerts = []
        for path, body in regime_for(DAY, ENTERPRISES):
            if path == "orders":
                gw.regime.add_order(OrderSpec.model_validate(body))
            else:
                alerts.append(gw.regime.add_alert(AlertSpec.model_validate(body)).id)
        async with Simulator(
            enterprises=ENTERPRISES,
            hj212=("127.0.0.1", gw.hj212.port),
            mqtt=("127.0.0.1", mosquitto.port),
            prefix="sim1",
        ) as sim:
            await sim.play_day(DAY - timedelta(days=1), scripted=False)
            await sim.play_day(DAY, scripted=True)
            stop = asyncio.Event()
            alive = asyncio.create_task(sim.keep_alive(stop, 5.0))
            deadline = time.monotonic() + 150
            produced: list[Expected] = []
            items: list[Anomaly] = []
            changed = time.monotonic()
            while time.monotonic() < deadline:
                items, _ = gw.anomalies.query(limit=1000)
                now = seen(items)
                if now != produced:
                    produced, changed = now, time.monotonic()
                wall_clock_in = offline <= {p.subject for p in produced}
                if wall_clock_in and time.monotonic() - changed >= SETTLED_S:
                    break
                await asyncio.sleep(0.25)
            stop.set()
            await alive
            backfilled = {
                key: logger.backfilled for key, logger in sim.loggers.items() if logger.backfilled
            }
            requested = {key: logger.requested for key, logger in sim.loggers.items()}
        print(comparison(expected, items))
        assert produced == expected, comparison(expected, items)

        assert backfilled == {f"SIM{k}/DW1": [DAY + timedelta(hours=5)] for k in range(2)}
        for k in range(ENTERPRISES):  # the hours DW1 stopped sending were asked for too
            assert any(
                cn == "2061" and begin <= DAY + timedelta(hours=18) <= end
                for cn, begin, end in requested[f"SIM{k}/DW1"]
            ), requested[f"SIM{k}/DW1"]
        items, _ = gw.anomalies.query(limit=1000)
        gaps = [a for a in items if a.type == "data_gap" and a.ended_at is not None]
        assert [g.evidence["closed_as"] for g in gaps] == ["backfilled"] * ENTERPRISES
        for a in items:  # one obligation from orange into red: both alerts in the evidence
            if a.subject.endswith("/L3"):
                assert all(alert in json.dumps(a.evidence) for alert in alerts), a.evidence

        def hours_stored(enterprise: str, outlet: str, pollutant: str) -> int:
            rows = influx_rows(
                influx.url,
                database,
                f"SELECT count(avg) FROM emission WHERE enterprise='{enterprise}' AND "
                f"outlet='{outlet}' AND pollutant='{pollutant}' AND \"interval\"='hour'",
            )
            return int(rows[0]["count"]) if rows else 0

        wanted = [48, 48, 42, 48]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            counts = [
                hours_stored("SIM1", "DA1", SO2),  # 2025, encrypted, split in two packets
                hours_stored("SIM0", "DA1", SO2),  # 2025, encrypted, whole
                hours_stored("SIM0", "DW1", COD),  # 2017, MODBUS CRCs, back-filled, none from 18:00
                hours_stored("SIM0", "DB1", SO2_2005),  # 2005 codes as sent, some without QN
            ]
            if counts == wanted:
                break
            await asyncio.sleep(0.5)
        assert counts == wanted
    finally:
        await gw.shutdown()
