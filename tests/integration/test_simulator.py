"""The simulator against a running gateway (real sockets, Mosquitto and InfluxDB): a baseline
day and the scripted day give every scripted anomaly type at every enterprise and nothing
else; encrypted, split, MODBUS-checked and back-filled uploads all land in InfluxDB."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

from gateway import localstack
from gateway.config import load_config
from gateway.demo import regime_for
from gateway.regime import AlertSpec, OrderSpec
from gateway.simulator import SCRIPTED_TYPES, Simulator, owner_of, registry_toml
from gateway.simulator.plant import DUST, SO2, loggers_of
from gateway.supervisor import Gateway
from tests.conftest import influx_rows, write_config

DAY = datetime(2026, 3, 12)
ENTERPRISES = 2


async def test_two_days_give_every_scripted_anomaly_and_store_every_upload(
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
    gw = Gateway(load_config(config))
    await gw.start()
    try:
        assert gw.regime is not None and gw.anomalies is not None and gw.mqtt is not None
        await asyncio.wait_for(gw.mqtt.connected.wait(), 10)
        for path, body in regime_for(DAY, ENTERPRISES):
            if path == "orders":
                gw.regime.add_order(OrderSpec.model_validate(body))
            else:
                gw.regime.add_alert(AlertSpec.model_validate(body))
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
            deadline = time.monotonic() + 120
            found: dict[str, set[str]] = {}
            while time.monotonic() < deadline:
                items, _ = gw.anomalies.query(limit=1000)
                found = {}
                for a in items:
                    found.setdefault(owner_of(a.enterprise, a.subject), set()).add(a.type)
                if all(found.get(f"SIM{k}", set()) >= set(SCRIPTED_TYPES) for k in range(2)):
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await alive
            backfilled = {
                key: logger.backfilled for key, logger in sim.loggers.items() if logger.backfilled
            }
        assert found == {f"SIM{k}": set(SCRIPTED_TYPES) for k in range(ENTERPRISES)}
        assert backfilled == {f"SIM{k}/DW1": [DAY + timedelta(hours=5)] for k in range(2)}
        items, _ = gw.anomalies.query(limit=1000)
        gaps = [a for a in items if a.type == "data_gap"]
        assert [g.evidence["closed_as"] for g in gaps] == ["backfilled"] * ENTERPRISES
        offline = {a.subject for a in items if a.type == "device_offline"}
        assert offline == {f"mn:{loggers_of(k)['DV1'].mn}" for k in range(ENTERPRISES)}
        over = [a for a in items if a.type == "over_limit"]
        assert sorted(a.evidence["pollutant"] for a in over) == ["w01018"] * ENTERPRISES
        suspicious = [a for a in items if a.type == "suspicious_data"]
        assert sorted(a.evidence["pattern"] for a in suspicious) == ["zeros"] * ENTERPRISES
        assert all(a.evidence["pollutant"] == DUST for a in suspicious)

        def hours_stored(enterprise: str, outlet: str, pollutant: str) -> int:
            rows = influx_rows(
                influx.url,
                database,
                f"SELECT count(avg) FROM emission WHERE enterprise='{enterprise}' AND "
                f"outlet='{outlet}' AND pollutant='{pollutant}' AND \"interval\"='hour'",
            )
            return int(rows[0]["count"]) if rows else 0

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            counts = [
                hours_stored("SIM1", "DA1", SO2),  # 2025, encrypted, split in two packets
                hours_stored("SIM0", "DA1", SO2),  # 2025, encrypted, whole
                hours_stored("SIM0", "DW1", "w01018"),  # 2017, some MODBUS CRCs, back-filled
            ]
            if counts == [48, 48, 48]:
                break
            await asyncio.sleep(0.5)
        assert counts == [48, 48, 48]
    finally:
        await gw.shutdown()
