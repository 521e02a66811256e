"""Notifications in a real gateway: while the receiver hangs (accepts and never answers), HJ 212
frames are still acknowledged, and the notices go out once it answers; notify.sqlite is in the
backup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from adapters.hj212.device import DeviceClient
from gateway.backup import backup
from gateway.config import LoadedConfig
from gateway.notify.config import NotifySection
from gateway.supervisor import Gateway
from tests.frames import qn_for, upload
from tests.notify.receiver import Receiver


async def acked(dev: DeviceClient) -> bool:
    """The upload's 9014, past the history requests (2061) the data_gap rule may send."""
    for _ in range(10):
        frame = await dev.read_frame()
        if frame.cn == "9014":
            return True
    return False


async def test_a_hanging_receiver_delays_no_ack_and_gets_the_notices_later(
    gateway_config: Callable[..., LoadedConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_GW_HOOK_SECRET", "gw-secret")
    receiver = Receiver(webhook_secret=b"gw-secret", mode="hang")
    await receiver.start()
    loaded = gateway_config()
    loaded.config.notify = NotifySection.model_validate(
        {
            "timeout_s": 0.5,
            "retry_initial_s": 0.05,
            "retry_max_s": 0.2,
            "channels": [
                {
                    "name": "gw-hook",
                    "kind": "webhook",
                    "url": f"{receiver.url}/hook",
                    "secret_env": "T_GW_HOOK_SECRET",
                    "enterprises": ["E1"],
                    "types": ["over_limit"],
                }
            ],
        }
    )
    gateway = Gateway(loaded)
    await gateway.start()
    try:
        notify = gateway.notify
        assert notify is not None and gateway.anomalies is not None
        dev = await DeviceClient.connect("127.0.0.1", gateway.hj212.port)
        # COD over its limit of 50 mg/L on two days: two over_limit anomalies
        for i, (day, value) in enumerate([(2, 80.0), (2, 20.0), (3, 90.0), (3, 20.0)]):
            hour = datetime(2026, 4, day, 8 + i % 2)
            await dev.send(upload(qn=qn_for(500 + i), data_time=hour, values={"w01018": value}))
            assert await acked(dev)
        assert await receiver.wait_until(lambda: receiver.hung >= 2)  # one timed out already
        # the receiver still hangs: frames are acknowledged as before
        for i in range(20):
            hour = datetime(2026, 4, 5, i)
            await dev.send(upload(qn=qn_for(600 + i), data_time=hour, values={"w01018": 10.0}))
            assert await acked(dev)
        assert receiver.accepted == []
        items, total = gateway.anomalies.query(type_="over_limit")
        assert total == 2
        receiver.answer("ok")
        await receiver.wait_for(2)
        assert receiver.bad_signatures == 0
        got = sorted(r.json()["anomaly"]["id"] for r in receiver.accepted)
        assert got == sorted(a.id for a in items)
        assert await receiver.wait_until(lambda: notify.outbox.pending("gw-hook") == 0)
        await dev.close()
        copy = backup(loaded.data_dir, tmp_path / "backup")
        assert "notify.sqlite" in copy.stores
    finally:
        await gateway.shutdown()
        await receiver.stop()
    assert len(set(receiver.delivery_ids())) == len(receiver.accepted) == 2
