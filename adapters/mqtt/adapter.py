"""The MQTT adapter: subscribes to the power, gate and HJ 212 topics and makes every message
durable before its PUBACK.

QoS 1 with a persistent session (fixed client id, clean session off). A message is
acknowledged only after its points are fsynced in the spool, after a refused payload went to
the dead-letter topic, or after a 9014 reply was published; acknowledgements leave in the
order messages arrived (MQTT requires it). Until acknowledged a message stays in the broker's
in-flight window, so a slow InfluxDB (through a full spool) slows the broker, not our memory.
On disconnect the unacknowledged messages are simply redelivered by the broker after the
reconnect; their points are the same points again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.hj212.frame import Frame
from adapters.hj212.handler import Backfill, FrameHandler
from gateway import metrics
from gateway.ingest import Pipeline, PowerConverter, SpoolClosed, SpoolFull
from gateway.model import Point
from gateway.ratelimit import LogLimiter
from gateway.registry import Registry

from .config import MqttConfig
from .convert import gate_point, power_sample
from .errors import PayloadError
from .payloads import parse_payload

log = structlog.get_logger("adapters.mqtt")
ADAPTER = "mqtt"
OUTBOX_SIZE = 10_000  # messages the gateway publishes (anomalies) held while disconnected
YIELD_EVERY = 64  # messages handled back to back before the loop lets other tasks run
_RECEIVED = metrics.FRAMES_RECEIVED.labels(adapter=ADAPTER)


@dataclass(slots=True)
class _Pending:
    """A received message waiting for its effects before its PUBACK."""

    mid: int
    qos: int
    durable: list[asyncio.Future[None]] = field(default_factory=list)
    publish: list[tuple[str, bytes]] = field(default_factory=list)


class _TopicLink:
    """The HJ 212 handler's view of an MQTT topic (no back-fill requests over MQTT)."""

    def __init__(self, topic: str) -> None:
        self.peer = f"mqtt:{topic}"
        self.address = self.peer
        self.backfills: dict[str, Backfill] = {}

    def seen(self, frame: Frame) -> None:
        pass


class MqttAdapter:
    def __init__(
        self,
        config: MqttConfig,
        registry: Registry | Callable[[], Registry],
        pipeline: Pipeline,
        hj212: FrameHandler,
        power: PowerConverter,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._registry = registry if callable(registry) else lambda: registry
        self.pipeline = pipeline
        self.hj212 = hj212
        self.clock = clock
        self.power = power
        self.limiter = LogLimiter(config.error_log_interval_s)
        self.connected = asyncio.Event()
        self._was_up = False  # the current session got as far as subscribing
        self.connections = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._acks: asyncio.Queue[_Pending | None] | None = None
        self._outbox: deque[tuple[str, bytes]] = deque(maxlen=OUTBOX_SIZE)
        self._outbox_ready = asyncio.Event()
        prefix = config.topic_prefix.rstrip("/")
        self.prefix = prefix
        self.filters = [f"{prefix}/power/+/+", f"{prefix}/gate/+/+", f"{prefix}/hj212/+"]

    @property
    def registry(self) -> Registry:
        """The registry in force, read at each message (a callable given follows reloads)."""
        return self._registry()

    # -- connection life cycle ------------------------------------------------------------

    async def run(self) -> None:
        """Connect, consume, and reconnect with capped, jittered backoff until `stop`."""
        attempt = 0
        while not self._stopping:
            try:
                await self._session()
                attempt = 0
            except aiomqtt.MqttError as exc:
                # a session that was up ends an outage: the next one starts from the first
                # delay, and is logged
                attempt = 1 if self._was_up else attempt + 1
                self._was_up = False
                self.connected.clear()
                if self._stopping:
                    break
                delay = reconnect_delay(
                    attempt, self.config.reconnect_min_s, self.config.reconnect_max_s
                )
                metrics.ERRORS_TOTAL.labels(stage="mqtt_connection").inc()
                if attempt == 1 or attempt % 10 == 0:
                    log.warning(
                        "MQTT connection lost, reconnecting",
                        error=str(exc),
                        retry_in_s=round(delay, 2),
                        attempt=attempt,
                    )
                await asyncio.sleep(delay)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="mqtt-adapter")

    async def close(self, timeout_s: float) -> None:
        """Stop taking messages; let those received be acknowledged (up to `timeout_s`)."""
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        while self._acks is not None and self._acks.qsize() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # bounded poll, only during shutdown
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        password = os.environ.get(cfg.password_env) if cfg.password_env else None
        tls = ssl.create_default_context(cafile=cfg.ca_file) if cfg.tls else None
        session: dict[str, Any] = {"clean_session": False}
        if cfg.shared_group:  # shared subscriptions need MQTT 5: a session that never expires
            connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect.SessionExpiryInterval = 0xFFFFFFFF
            session = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,
                "properties": connect,
            }
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=cfg.client_id,
            username=cfg.username,
            password=password,
            keepalive=cfg.keepalive_s,
            tls_context=tls,
            **session,
        )
        # PUBACK only after durability: aiomqtt does not expose paho's manual acknowledgement
        # yet (empicano/aiomqtt#345), so it is switched on the paho client underneath.
        client._client.manual_ack_set(True)
        return client

    async def _session(self) -> None:
        client = self._client()
        async with client:
            self.connections += 1
            for topic in self.filters:
                name = (
                    f"$share/{self.config.shared_group}/{topic}"
                    if self.config.shared_group
                    else topic
                )
                await client.subscribe(name, qos=1)
            self.connected.set()
            self._was_up = True
            log.info(
                "MQTT subscribed", host=self.config.host, port=self.config.port, topics=self.filters
            )
            acks: asyncio.Queue[_Pending | None] = asyncio.Queue(self.config.max_inflight)
            self._acks = acks
            room = asyncio.Event()  # set by the acker when half the window is free
            acker = asyncio.create_task(self._acknowledge(client, acks, room), name="mqtt-acker")
            sender = asyncio.create_task(self._send_outbox(client), name="mqtt-outbox")
            try:
                received = 0
                async for message in client.messages:
                    if self._stopping:
                        break  # not acknowledged: the broker keeps it for the next session
                    pending = self._handle(message)
                    if acker.done():
                        acker.result()  # raises: the session ends, the broker redelivers
                    if not acks.full():  # no task per message while the window has room
                        acks.put_nowait(pending)
                        received += 1
                        if received % YIELD_EVERY == 0:
                            await asyncio.sleep(0)  # a backlog must not starve the acker
                        continue
                    # max_inflight unacknowledged: wait until the acker has freed half the
                    # window (one wait per many messages); the acker failing ends the session
                    room.clear()
                    freed = asyncio.ensure_future(room.wait())
                    await asyncio.wait({freed, acker}, return_when=asyncio.FIRST_COMPLETED)
                    if acker.done():
                        freed.cancel()
                        acker.result()  # raises: the session ends, the broker redelivers
                    acks.put_nowait(pending)
            finally:
                for task in (acker, sender):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self._acks = None
                self.connected.clear()

    async def _acknowledge(
        self, client: aiomqtt.Client, acks: asyncio.Queue[_Pending | None], room: asyncio.Event
    ) -> None:
        """PUBACK each message, in arrival order, once what it caused is durable."""
        while True:
            pending = await acks.get()
            if acks.qsize() <= acks.maxsize // 2:
                room.set()
            if pending is None:
                return
            try:
                for fut in pending.durable:
                    if fut.done():  # committed already: no shield, no suspension
                        fut.result()
                    else:
                        await asyncio.shield(fut)  # shared by a spool commit: never cancel it
            except Exception as exc:
                metrics.FRAMES_REJECTED.labels(adapter=ADAPTER, reason="not_durable").inc()
                # without its PUBACK the broker only resends after a reconnect: reconnect
                raise aiomqtt.MqttError(f"message not durable ({exc!r}); reconnecting") from exc
            for topic, payload in pending.publish:
                await client.publish(topic, payload, qos=1)
            if pending.qos > 0:
                client._client.ack(pending.mid, pending.qos)

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 1 message for the broker; sent when connected. Bounded: when
        `OUTBOX_SIZE` wait, the oldest is dropped and counted (the anomaly store, the API and
        InfluxDB keep everything)."""
        if len(self._outbox) == self._outbox.maxlen:
            metrics.ERRORS_TOTAL.labels(stage="mqtt_outbox_full").inc()
        self._outbox.append((topic, payload))
        self._outbox_ready.set()

    async def _send_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            await self._outbox_ready.wait()
            while self._outbox:
                topic, payload = self._outbox[0]
                await client.publish(topic, payload, qos=1)
                self._outbox.popleft()
            self._outbox_ready.clear()

    # -- messages -------------------------------------------------------------------------

    def _handle(self, message: aiomqtt.Message) -> _Pending:
        _RECEIVED.inc()
        pending = _Pending(message.mid, message.qos)
        topic = message.topic.value
        payload = (
            message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        )
        parts = (
            topic[len(self.prefix) + 1 :].split("/") if topic.startswith(self.prefix + "/") else []
        )
        try:
            if len(parts) == 3 and parts[0] == "power":
                self._power(parts[1], parts[2], payload, pending)
            elif len(parts) == 3 and parts[0] == "gate":
                self._gate(parts[1], parts[2], payload, pending)
            elif len(parts) == 2 and parts[0] == "hj212":
                self._hj212(topic, parts[1], payload, pending)
            else:
                raise PayloadError("schema", f"topic {topic!r} is not one the gateway handles")
        except PayloadError as exc:
            self._dead_letter(topic, payload, exc, pending)
        except (SpoolFull, SpoolClosed) as exc:  # not stored and not acked: the broker keeps it
            raise aiomqtt.MqttError(f"cannot store messages now ({exc}); reconnecting") from exc
        except Exception as exc:  # a bug must not make a poison message redelivered forever
            metrics.ERRORS_TOTAL.labels(stage="mqtt_message").inc()
            log.exception("message handling failed", topic=topic)
            pending.durable.clear()
            error = PayloadError("internal", f"the gateway failed on this message: {exc!r}")
            self._dead_letter(topic, payload, error, pending)
        return pending

    def _power(self, enterprise: str, meter_id: str, payload: bytes, pending: _Pending) -> None:
        samples = parse_payload("power", payload)
        if self.registry.meter(enterprise, meter_id) is None:
            self._unregistered("meter", enterprise, meter_id)
        points = [self.power.point(enterprise, meter_id, power_sample(s)) for s in samples]
        self._submit(points, pending)

    def _gate(self, enterprise: str, gate_id: str, payload: bytes, pending: _Pending) -> None:
        records = parse_payload("gate", payload)
        if self.registry.gate(enterprise, gate_id) is None:
            self._unregistered("gate", enterprise, gate_id)
        self._submit([gate_point(enterprise, gate_id, r) for r in records], pending)

    def _hj212(self, topic: str, mn: str, payload: bytes, pending: _Pending) -> None:
        replies = self.hj212.process(payload.strip(), _TopicLink(topic), expected_mn=mn)
        if replies is None:
            raise PayloadError("value", "HJ 212 frame refused (see frames_rejected_total)")
        for reply in replies:
            if reply.durable is not None:
                pending.durable.append(reply.durable)
            if reply.data is not None:
                pending.publish.append((f"{topic}/reply", reply.data))
                metrics.replies_sent(reply.cn).inc()

    def _submit(self, points: list[Point], pending: _Pending) -> None:
        fut = self.pipeline.submit(points)
        if fut is not None:
            pending.durable.append(fut)

    def _unregistered(self, kind: str, enterprise: str, device: str) -> None:
        if self.config.unknown_devices == "refuse":
            raise PayloadError("value", f"{kind} {enterprise}/{device} is not in the registry")
        metrics.UNREGISTERED_STORED.labels(kind=kind).inc()
        if self.limiter.allow((kind, enterprise, device), time.monotonic()) >= 0:
            log.warning(
                "data from an unregistered device stored",
                kind=kind,
                enterprise=enterprise,
                device=device,
            )

    def _dead_letter(
        self, topic: str, payload: bytes, exc: PayloadError, pending: _Pending
    ) -> None:
        metrics.FRAMES_REJECTED.labels(adapter=ADAPTER, reason=exc.reason).inc()
        body = _dead_letter_body(topic, payload, exc, self.clock())
        pending.publish.append((f"{self.prefix}/deadletter/{topic}", body))
        if self.limiter.allow((topic, exc.reason), time.monotonic()) >= 0:
            log.warning("message dead-lettered", topic=topic, reason=exc.reason, detail=exc.message)


_PASSWORD = re.compile(rb"PW=[^;&]*")


def _dead_letter_body(topic: str, payload: bytes, exc: PayloadError, now: datetime) -> bytes:
    """The dead-letter message: the payload as received, but an HJ 212 frame's PW masked."""
    payload = _PASSWORD.sub(b"PW=***", payload)
    return json.dumps(
        {
            "topic": topic,
            "reason": exc.reason,
            "error": exc.message,
            "received_at": now.isoformat(),
            "payload": payload.decode("utf-8", errors="replace"),
        },
        ensure_ascii=False,
    ).encode()


def reconnect_delay(attempt: int, min_s: float, max_s: float) -> float:
    """The wait before reconnect attempt `attempt` (1 after a session that was up): doubling
    from `min_s`, capped at `max_s`, jittered down to half."""
    return float(min(max_s, min_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
