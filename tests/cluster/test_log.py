"""The JetStream log on a real 3-node cluster: appends of one moment travel as one message,
many messages await their acks at once, and the spool stays when the cluster is off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import pytest

from devkit import localstack
from gateway.cluster.config import ClusterSection
from gateway.cluster.log import JetStreamLog, LogClosed, LogFull
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway


def section(servers: list[localstack.NatsServer], **extra: object) -> ClusterSection:
    return ClusterSection.model_validate(
        {"enabled": True, "servers": [s.url for s in servers], "stream": "LOG_T", **extra}
    )


async def stream_messages(servers: list[localstack.NatsServer], stream: str) -> int:
    nc = await nats.connect(servers=[s.url for s in servers])
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


async def test_appends_of_one_moment_share_a_message_and_its_ack(
    nats: list[localstack.NatsServer],
) -> None:
    log = JetStreamLog(section(nats, max_message_bytes="4KiB"), node="t")
    await log.open()
    try:
        records = [b"emission,mn=A avg=%d %d\n" % (i, i) for i in range(1000)]
        futures = [log.append(r) for r in records]
        await asyncio.gather(*futures)
        size = sum(map(len, records))
        # one message per 4 KiB of records, not one per record
        assert size // 4096 <= log.published <= size // 4096 + 2
        assert len(set(futures)) == log.published
        assert await stream_messages(nats, "LOG_T") == log.published
        assert log.pending_bytes == 0
    finally:
        await log.close()


async def test_publishes_are_pipelined_not_one_round_trip_at_a_time(
    nats: list[localstack.NatsServer],
) -> None:
    log = JetStreamLog(section(nats, max_message_bytes="1KiB", max_inflight=64), node="t")
    await log.open()
    try:
        most = 0
        futures = []
        for i in range(200):  # 200 records of 1 KiB: 200 messages
            futures.append(log.append(b"x" * 1000 + b"%d\n" % i))
            await asyncio.sleep(0)
            most = max(most, log.inflight)
        await asyncio.gather(*futures)
        assert most > 1  # several messages awaited their acks at once
        assert log.published == 200
    finally:
        await log.close()


async def test_past_the_pending_bound_appends_are_refused_at_once(
    nats: list[localstack.NatsServer],
) -> None:
    log = JetStreamLog(
        section(nats, max_message_bytes="1KiB", max_pending_bytes="4KiB", max_inflight=1),
        node="t",
    )
    await log.open()
    try:
        taken = [log.append(b"y" * 1000) for _ in range(4)]
        with pytest.raises(LogFull):
            log.append(b"y" * 1000)
        assert log.refused == 1
        await asyncio.gather(*taken)  # what was taken is stored all the same
        log.append(b"y" * 1000)  # room again
    finally:
        await log.close()
    with pytest.raises(LogClosed):
        log.append(b"z\n")


async def test_cluster_off_the_spool_and_its_forwarder_are_used(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    gw = Gateway(gateway_config())
    assert gw.log is None and gw.stream_writer is None
    assert gw.pipeline.spool is gw.spool
    await gw.start()
    try:
        assert gw._forward_task is not None and gw.hj212.port > 0
    finally:
        await gw.shutdown()
