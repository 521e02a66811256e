"""A running gateway at the archive's size cap: the oldest days are deleted and said so (log
line, metric, pruned.jsonl), acknowledgements keep flowing, and the chain still checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import REGISTRY

from adapters.hj212.device import DeviceClient
from gateway.archive.files import day_files, read_pruned
from gateway.archive.verify import Verified, verify
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.archive.kit import write_days
from tests.frames import qn_for, upload


def deleted_for_size() -> float:
    return REGISTRY.get_sample_value("archive_days_deleted_total", {"reason": "size"}) or 0.0


async def test_at_the_cap_old_days_go_and_acks_keep_flowing(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    loaded = gateway_config(archive={"max_bytes": "64KiB"})
    archive = loaded.data_dir / "archive"
    first = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(3)
    await write_days(archive, days=3, per_day=60, start=first)  # about 69 KB, three old days
    before = deleted_for_size()
    gw = Gateway(loaded)
    acks = 0
    with structlog.testing.capture_logs() as logs:
        await gw.start()
        try:
            dev = await DeviceClient.connect("127.0.0.1", gw.hj212.port)
            for i in range(120):
                when = datetime(2026, 5, 1) + timedelta(minutes=i)
                await dev.send(upload(cn="2051", qn=qn_for(i), data_time=when))
                acks += (await dev.read_frame()).cn == "9014"
            await dev.close()
        finally:
            await gw.shutdown()
    assert acks == 120
    days = [d for d, _ in day_files(archive)]
    old = [(first + timedelta(days=k)).date() for k in range(3)]
    assert old[0] not in days and old[1] not in days  # one at start, one as today's grew
    assert sum(p.stat().st_size for _, p in day_files(archive)) <= 64 << 10
    assert deleted_for_size() - before >= 2
    said = [e for e in logs if e["event"] == "archive at its size cap: oldest day deleted"]
    assert [e["day"] for e in said][:2] == [old[0].isoformat(), old[1].isoformat()]
    assert {p.reason for p in read_pruned(archive)} == {"size"}
    result = verify(archive)
    assert isinstance(result, Verified), result
    assert result.follows == read_pruned(archive)[-1].last_hash
