"""Enterprise partitions of the rules: what ingestion publishes for the rule workers.

Every enterprise belongs to one partition, `partition_of(enterprise, partitions)` (a CRC-32 of
its id, so the same on every node and release). Ingestion nodes publish what the rules judge
(the points the pipeline hands its listeners once durable, and the device events) to
`<prefix>.rules.<partition>` of a second stream with limits retention, which keeps them for
`rules_max_age_s` so that a worker taking a partition over can replay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from prometheus_client import Counter

from gateway.model import DeviceEvent, Point
from gateway.rules.auth import UNREGISTERED

from .config import ClusterSection
from .stream import DUPLICATE_WINDOW_S, connect

log = structlog.get_logger("gateway.cluster")

RULES_PUBLISHED = Counter(
    "cluster_rules_messages_published_total", "Messages the rules stream acknowledged"
)
RULES_DROPPED = Counter(
    "cluster_rules_entries_dropped_total",
    "Points or events not published to the rules stream (its queue full, or closing)",
)

# ("p", [point, ...], stamp) or ("e", event, stamp), as JSON; the stamp is when the node took
# it (wall clock, ns), by which the workers restore the order the devices sent in
Entry = tuple[str, Any, int]
MAX_QUEUED = 200_000  # entries waiting for the rules stream; past it new ones are dropped


def _release(stored: asyncio.Future[None] | None) -> None:
    if stored is not None and not stored.done():
        stored.set_result(None)


def partition_of(enterprise: str, partitions: int) -> int:
    """The partition of an enterprise id (stable across nodes and restarts)."""
    return zlib.crc32(enterprise.encode()) % partitions


Judged = Sequence[Point] | DeviceEvent  # an entry as the rules take it


def encode(entries: Sequence[tuple[Any, ...]]) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()


def decode(payload: bytes) -> list[Judged]:
    """The points and events of one message, in publish order."""
    return [entry for entry, _ in decode_stamped(payload)]


def decode_stamped(payload: bytes) -> list[tuple[Judged, int | None]]:
    """The points and events of one message with their stamps (None: an entry without one)."""
    out: list[tuple[Judged, int | None]] = []
    for kind, body, *rest in json.loads(payload):
        stamp = int(rest[0]) if rest else None
        if kind == "p":
            points = [
                Point(m, tuple((k, v) for k, v in tags), tuple((k, v) for k, v in fields), ns)
                for m, tags, fields, ns in body
            ]
            out.append((points, stamp))
        elif kind == "e":
            out.append((_event(body), stamp))
    return out


def _point(point: Point) -> list[Any]:
    return [point.measurement, point.tags, point.fields, point.event_time_ns]


def _event_json(event: DeviceEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "device": event.device,
        "received_at": event.received_at.isoformat(),
        "enterprise": event.enterprise,
        "detail": event.detail,
        "device_time": event.device_time.isoformat() if event.device_time else None,
        "address": event.address,
    }


def _event(body: dict[str, Any]) -> DeviceEvent:
    device_time = body.get("device_time")
    return DeviceEvent(
        kind=body["kind"],
        device=body["device"],
        received_at=datetime.fromisoformat(body["received_at"]),
        enterprise=body.get("enterprise", ""),
        detail=body.get("detail", ""),
        device_time=datetime.fromisoformat(device_time) if device_time else None,
        address=body.get("address", ""),
    )


def rules_stream_config(cfg: ClusterSection) -> api.StreamConfig:
    """Limits retention: messages stay (for replays) until `rules_max_age_s` or
    `rules_max_bytes`, the oldest dropped first."""
    return api.StreamConfig(
        name=cfg.rules_stream,
        subjects=[f"{cfg.rules_prefix}.rules.>"],
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        storage=api.StorageType.FILE,
        num_replicas=cfg.replicas,
        max_bytes=cfg.rules_max_bytes,
        max_age=cfg.rules_max_age_s,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_rules_stream(
    js: JetStreamContext, cfg: ClusterSection, timeout_s: float = 30.0
) -> None:
    """Create the rules stream, or update it to the configuration; retried while the cluster
    has no JetStream leader yet."""
    wanted = rules_stream_config(cfg)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            try:
                info = await js.stream_info(cfg.rules_stream)
            except NotFoundError:
                await js.add_stream(wanted)
                log.info("rules stream created", stream=cfg.rules_stream)
                return
            have = info.config
            if (
                have.max_bytes != wanted.max_bytes
                or have.max_age != wanted.max_age
                or have.num_replicas != wanted.num_replicas
                or sorted(have.subjects or []) != wanted.subjects
            ):
                await js.update_stream(wanted)
                log.info("rules stream updated", stream=cfg.rules_stream)
            return
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("rules stream not ready yet", stream=cfg.rules_stream, error=repr(exc))
            await asyncio.sleep(0.5)


class RulesPublisher:
    """Pipeline listener of an ingestion node: publishes what the rules judge to its
    enterprise's partition, in the order received.

    The points are already durable in the points stream (and acknowledged) when they get
    here; each message is published with a `Nats-Msg-Id` and sent again until the stream
    acknowledges it, so a message is stored once. What one moment of the event loop hands
    over goes as one message per partition; the messages of a moment are published together
    and the next moment's only after all are stored, so a partition's order is kept.
    """

    def __init__(self, cfg: ClusterSection, *, node: str) -> None:
        self.cfg = cfg
        self.node = node
        self._boot = f"{node}-{os.getpid()}-{os.urandom(4).hex()}"
        self._seq = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._queued: dict[int, list[Entry]] = {}
        self._count = 0
        self._ready = asyncio.Event()
        self._closing = False
        self._drained = asyncio.Event()  # nothing queued nor being published
        self._drained.set()
        self.published = 0
        self._stored: asyncio.Future[None] | None = None  # the next batch's, acks wait on it

    async def open(self) -> None:
        self._nc = await connect(self.cfg, f"{self.node}-rules-pub", lambda: self._closing)
        self._js = self._nc.jetstream(timeout=self.cfg.ack_timeout_s)
        await ensure_rules_stream(self._js, self.cfg)

    def _put(self, enterprise: str, entry: Entry) -> bool:
        if self._count >= MAX_QUEUED or self._closing:
            RULES_DROPPED.inc()
            return False
        part = partition_of(enterprise, self.cfg.partitions)
        self._queued.setdefault(part, []).append(entry)
        self._count += 1
        self._ready.set()
        self._drained.clear()
        return True

    def on_points(self, points: Sequence[Point]) -> asyncio.Future[None] | None:
        """The pipeline's acknowledgement holder: split by enterprise, in order; the future
        completes once the rules stream stored them (None: dropped, the queue full)."""
        by_enterprise: dict[str, list[list[Any]]] = {}
        for point in points:
            by_enterprise.setdefault(point.tag("enterprise") or "", []).append(_point(point))
        stamp = time.time_ns()
        queued = [self._put(ent, ("p", mine, stamp)) for ent, mine in by_enterprise.items()]
        if not any(queued):
            return None
        if self._stored is None:  # one for everything queued until the next batch
            self._stored = asyncio.get_running_loop().create_future()
        return self._stored

    def on_device_event(self, event: DeviceEvent) -> None:
        """The HJ 212 handler's events (contact, refused frames); an unknown MN's go where
        its anomaly belongs, the partition of the enterprise `unregistered`."""
        self._put(event.enterprise or UNREGISTERED, ("e", _event_json(event), time.time_ns()))

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._queued, self._count = self._queued, {}, 0
            stored, self._stored = self._stored, None
            messages = []
            for part, entries in batch.items():
                self._seq += 1
                messages.append((part, f"{self._boot}-{self._seq}", encode(entries)))
            try:
                await asyncio.gather(*(self._publish(*m) for m in messages))
            finally:
                _release(stored)
            if not self._queued:
                self._drained.set()

    async def _publish(self, part: int, msg_id: str, payload: bytes) -> None:
        """Until stored: the same id, so a retry whose first try was stored is stored once."""
        assert self._js is not None
        subject = self.cfg.rules_subject(part)
        while True:
            try:
                await self._js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
            except (TimeoutError, APIError, nats.errors.Error) as exc:
                if self._closing:
                    RULES_DROPPED.inc()
                    return
                log.warning("rules stream publish failed; again", error=repr(exc))
                await asyncio.sleep(0.25)
                continue
            self.published += 1
            RULES_PUBLISHED.inc()
            return

    async def close(self, run: asyncio.Task[None] | None, timeout_s: float = 5.0) -> None:
        """Publish what is queued (at most `timeout_s`), then close the connection."""
        if self._nc is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        self._closing = True
        if run is not None:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
        _release(self._stored)  # what is left is dropped for the rules: acks go on
        self._stored = None
        nc, self._nc = self._nc, None
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await asyncio.wait_for(nc.close(), 2.0)
