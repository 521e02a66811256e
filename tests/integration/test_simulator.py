"""The simulator's scripted day against a running gateway yields every scripted anomaly."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

from gateway import localstack
from gateway.config import load_config
from gateway.regime import AlertSpec, OrderSpec
from gateway.simulator import registry_toml, run_day
from gateway.supervisor import Gateway
from tests.conftest import write_config

DAY = datetime(2026, 3, 12)
EXPECTED = {
    "over_limit",
    "data_gap",
    "treatment_not_running",
    "production_during_shutdown",
    "banned_vehicle_entry",
    "auth_failure",
}


async def test_scripted_day_produces_every_scripted_anomaly(
    tmp_path: Path,
    influx: localstack.ManagedProcess,
    mosquitto: localstack.ManagedProcess,
    database: str,
) -> None:
    config = write_config(
        tmp_path / "gw",
        influx.url,
        database,
        registry=registry_toml(2),
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
        for k in range(2):
            gw.regime.add_order(
                OrderSpec.model_validate(
                    {
                        "kind": "shutdown",
                        "enterprise": f"SIM{k}",
                        "lines": ["L1"],
                        "starts_at": "2026-03-12T10:00:00+08:00",
                        "ends_at": "2026-03-13T00:00:00+08:00",
                    }
                )
            )
        gw.regime.add_alert(
            AlertSpec.model_validate(
                {
                    "level": "orange",
                    "regions": ["sim-city"],
                    "starts_at": "2026-03-12T14:00:00+08:00",
                    "ends_at": "2026-03-12T18:00:00+08:00",
                }
            )
        )
        loggers = await run_day(
            enterprises=2,
            day=DAY,
            hj212=("127.0.0.1", gw.hj212.port),
            mqtt=("127.0.0.1", mosquitto.port),
            prefix="sim1",
        )
        assert all(len(logger.backfilled) == 1 for logger in loggers)
        deadline = time.monotonic() + 10
        found: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            items, _ = gw.anomalies.query(limit=1000)
            found = {}
            for a in items:
                found.setdefault(a.enterprise, set()).add(a.type)
            if all(found.get(f"SIM{k}", set()) >= EXPECTED for k in range(2)):
                break
            await asyncio.sleep(0.2)
        for k in range(2):
            assert found.get(f"SIM{k}", set()) >= EXPECTED, found
        gaps, _ = gw.anomalies.query(type_="data_gap")
        assert all(g.state == "closed" and g.evidence["closed_as"] == "backfilled" for g in gaps)
    finally:
        await gw.shutdown()
