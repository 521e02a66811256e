"""Connecting to the NATS cluster and making sure the stream of points exists as configured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from .config import ClusterSection

log = structlog.get_logger("gateway.cluster")

DUPLICATE_WINDOW_S = 120.0  # a republished message (same Nats-Msg-Id) within it is stored once


async def connect(
    cfg: ClusterSection, name: str, closing: Callable[[], bool] = lambda: False
) -> Client:
    """A connection that reconnects for ever (to any server of the cluster); `closing` says
    when a disconnection is this node's own doing."""

    async def disconnected() -> None:
        if not closing():
            log.warning("NATS connection lost; reconnecting", node=name)

    async def reconnected() -> None:
        log.info("NATS connection back", node=name)

    async def error(exc: Exception) -> None:
        log.warning("NATS client error", node=name, error=repr(exc))

    return await nats.connect(
        servers=cfg.servers,
        name=name,
        connect_timeout=2,
        reconnect_time_wait=0.25,
        max_reconnect_attempts=-1,
        ping_interval=5,
        max_outstanding_pings=2,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )


def stream_config(cfg: ClusterSection) -> api.StreamConfig:
    """Work-queue retention: a message leaves the stream once a writer acked it (its points are
    in InfluxDB), so `max_bytes` bounds what is not yet written; discard new: when full, a
    publish is refused rather than an older message dropped."""
    return api.StreamConfig(
        name=cfg.stream,
        subjects=list(cfg.subjects),
        retention=api.RetentionPolicy.WORK_QUEUE,
        discard=api.DiscardPolicy.NEW,
        storage=api.StorageType.FILE,
        num_replicas=cfg.replicas,
        max_bytes=cfg.max_bytes,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_stream(js: JetStreamContext, cfg: ClusterSection, timeout_s: float = 30.0) -> None:
    """Create the stream, or update its subjects, size and replicas; retried while the cluster
    has no JetStream leader yet (just started)."""
    wanted = stream_config(cfg)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            try:
                info = await js.stream_info(cfg.stream)
            except NotFoundError:
                await js.add_stream(wanted)
                log.info("stream created", stream=cfg.stream, replicas=cfg.replicas)
                return
            have = info.config
            if (
                sorted(have.subjects or []) != sorted(cfg.subjects)
                or have.max_bytes != cfg.max_bytes
                or have.num_replicas != cfg.replicas
            ):
                await js.update_stream(wanted)
                log.info("stream updated", stream=cfg.stream, max_bytes=cfg.max_bytes)
            return
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            # another node created it meanwhile, or no meta leader yet: look again
            if time.monotonic() >= deadline:
                raise
            log.info("stream not ready yet", stream=cfg.stream, error=repr(exc))
            await asyncio.sleep(0.5)
