"""A full stream refuses publishes: the device gets no acknowledgement, the refusal is counted,
and acks resume once a writer has drained the stream into InfluxDB."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from adapters.hj212.device import DeviceClient
from devkit import localstack
from gateway.config import load_config
from gateway.supervisor import Gateway
from tests.cluster.conftest import cluster, frame_for, node_config, wait_stored
from tests.frames import qn_for


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def send_until_refused(dev: DeviceClient, gw: Gateway, limit: int) -> tuple[set[int], int]:
    """Send uploads one at a time until the log refuses one: the acked ones and the refused."""
    assert gw.log is not None
    acked: set[int] = set()
    for i in range(limit):
        before = gw.log.refused
        await dev.send(frame_for(i))
        while gw.log.refused == before:
            try:
                reply = await dev.read_frame(0.2)
            except TimeoutError:
                continue
            assert (reply.cn, reply.qn) == ("9014", qn_for(i))
            acked.add(i)
            break
        else:
            return acked, i
    raise AssertionError(f"{limit} uploads fitted in the stream")


async def test_full_stream_devices_not_acked_then_acked_after_drain(
    tmp_path: Path,
    nats: list[localstack.NatsServer],
    influx: localstack.ManagedProcess,
    database: str,
) -> None:
    small = {"max_bytes": "16KiB", "max_message_bytes": "4KiB", "stream": "SMALL"}
    ingest = Gateway(
        load_config(
            node_config(
                tmp_path / "ingest", influx.url, database, cluster(nats, ["ingest"], **small)
            )
        )
    )
    await ingest.start()
    full_before = sample("cluster_appends_refused_total", reason="stream_full")
    rejected_before = sample("frames_rejected_total", adapter="hj212", reason="not_durable")
    writer: Gateway | None = None
    try:
        dev = await DeviceClient.connect("127.0.0.1", ingest.hj212.port)
        acked, refused = await send_until_refused(dev, ingest, 1000)
        assert len(acked) == refused > 10  # the stream held some before it was full
        assert sample("cluster_appends_refused_total", reason="stream_full") == full_before + 1
        # a writer drains the stream into InfluxDB; the device's next upload is acked, and
        # the refused one never was: replies keep their order, so it would come first
        writer = Gateway(
            load_config(
                node_config(
                    tmp_path / "writer", influx.url, database, cluster(nats, ["writer"], **small)
                )
            )
        )
        await writer.start()
        assert writer.stream_writer is not None
        while writer.stream_writer.messages_written < len(acked):  # drained
            await asyncio.sleep(0.05)
        await dev.send(frame_for(refused + 1))
        reply = await dev.read_frame(30)
        assert (reply.cn, reply.qn) == ("9014", qn_for(refused + 1))
        await dev.send(frame_for(refused))  # the device sends the refused one again
        reply = await dev.read_frame(30)
        assert (reply.cn, reply.qn) == ("9014", qn_for(refused))
        acked |= {refused, refused + 1}
        values = await wait_stored(influx.url, database, acked)
        assert acked <= set(values) and len(values) == len(set(values))
        assert sample("frames_rejected_total", adapter="hj212", reason="not_durable") == (
            rejected_before + 1
        )
        await dev.close()
    finally:
        await ingest.shutdown()
        if writer is not None:
            await writer.shutdown()
