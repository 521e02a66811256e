"""Plays the simulated enterprises' days against a gateway: loggers over TCP, meters and gates
over MQTT, paced by a speed-up factor on the devices' own (historical) clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType

import aiomqtt

from devkit.simulator.devices import Action, LoggerSpec, Publish, Upload, loggers_of
from devkit.simulator.loggers import Logger
from devkit.simulator.plant import Plant

PROGRESS_EVERY = timedelta(minutes=10)
SYNC_EVERY = timedelta(minutes=10)
MQTT_IN_FLIGHT = 200
QUIET = logging.getLogger("devkit.simulator.mqtt")
QUIET.setLevel(logging.ERROR)
LOGGER_QUEUE = 1000


class Simulator:
    """N simulated enterprises. `speedup` 0 plays as fast as the gateway answers; 600 plays a
    day in 2.4 minutes. Timestamps in the data are always the script's, and what a day sends
    depends only on the days played (the plants' random numbers are seeded by enterprise and
    date), not on the wall clock.

    What the platform acknowledged is kept: each logger's `acked` uploads (every packet got
    its 9014) and `published`, the MQTT messages the broker acknowledged (PUBACK). Loggers
    persist for `retry_for_s` (see `Logger`); `at_moment`, if given, is awaited before the
    actions of each moment of a day are released (faults injected at a point of the day)."""

    def __init__(
        self,
        *,
        enterprises: int,
        hj212: tuple[str, int],
        mqtt: tuple[str, int],
        prefix: str = "pollution",
        speedup: float = 0.0,
        on_progress: Callable[[Simulator, datetime], None] | None = None,
        retry_for_s: float = 0.0,
        at_moment: Callable[[datetime], Awaitable[None]] | None = None,
    ) -> None:
        self.plants = [Plant(k) for k in range(enterprises)]
        self.hj212 = hj212
        self.mqtt_address = mqtt
        self.prefix = prefix
        self.speedup = speedup
        self.on_progress = on_progress
        self.retry_for_s = retry_for_s
        self.at_moment = at_moment
        self.loggers: dict[str, Logger] = {}
        self.frames = 0
        self.messages = 0
        self.published: list[Publish] = []
        self._queues: dict[str, asyncio.Queue[Upload]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._publishing: set[asyncio.Task[None]] = set()
        self._in_flight = asyncio.Semaphore(MQTT_IN_FLIGHT)
        self.errors: list[BaseException] = []
        self._mqtt: aiomqtt.Client | None = None
        self._clock: tuple[datetime, float] | None = None  # (device time, monotonic then)

    async def __aenter__(self) -> Simulator:
        self._mqtt = aiomqtt.Client(
            *self.mqtt_address,
            identifier=f"simulator-{os.getpid()}",
            logger=QUIET,  # it warns of every publish beyond 10 in flight
        )
        await self._mqtt.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [*self._workers, *self._publishing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for logger in self.loggers.values():
            await logger.close()
        if self._mqtt is not None:
            await self._mqtt.__aexit__(exc_type, exc, tb)

    def logger(self, spec: LoggerSpec) -> Logger:
        if spec.key not in self.loggers:
            history = self.plants[spec.k].history
            self.loggers[spec.key] = Logger(spec, self.hj212, history, retry_for_s=self.retry_for_s)
        return self.loggers[spec.key]

    async def play_day(
        self,
        day: datetime,
        *,
        scripted: bool,
        paced: bool = True,
        not_before: Callable[[], datetime] | None = None,
    ) -> None:
        """Play one day (`day` is local midnight) of every enterprise. Actions are released in
        time order (paced by `speedup`; with `not_before`, the devices' present, none before
        its time, so the replay turns live); each logger sends its own in order and waits for
        each reply, MQTT messages go out in order with up to `MQTT_IN_FLIGHT` unacknowledged."""
        actions = sorted(
            itertools.chain.from_iterable(p.day(day, scripted=scripted) for p in self.plants),
            key=lambda a: a.at,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        shown = day - PROGRESS_EVERY
        synced = day
        for at, group in itertools.groupby(actions, key=lambda a: a.at):
            if at - synced >= SYNC_EVERY:  # the feeds never drift further apart than this
                synced = at
                await self._drain()
            delay = 0.0
            if paced and self.speedup > 0:
                delay = started + (at - day).total_seconds() / self.speedup - loop.time()
            if not_before is not None:
                delay = max(delay, (at - not_before()).total_seconds())
            if delay > 0:
                await self._drain()  # what is due goes out before the pause
                await asyncio.sleep(delay)
            if self.at_moment is not None:
                await self.at_moment(at)
            self._clock = (at, time.monotonic())
            for action in group:
                await self._release(action)
            if self.on_progress is not None and at - shown >= PROGRESS_EVERY:
                shown = at
                self.on_progress(self, at)
        await self._drain()

    async def _release(self, action: Action) -> None:
        if isinstance(action, Publish):
            await self._in_flight.acquire()
            task = asyncio.create_task(self._publish(action))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)
            return
        key = action.logger.key
        if key not in self._queues:
            self._queues[key] = asyncio.Queue(LOGGER_QUEUE)
            self._workers.append(asyncio.create_task(self._logger_worker(action.logger)))
        await self._queues[key].put(action)

    async def _publish(self, action: Publish) -> None:
        assert self._mqtt is not None
        try:
            payload = json.dumps(action.payload, ensure_ascii=False)
            await self._mqtt.publish(f"{self.prefix}/{action.topic}", payload, qos=1)
            self.messages += 1
            self.published.append(action)  # the broker's PUBACK came
        except aiomqtt.MqttError as exc:
            self.errors.append(exc)
        finally:
            self._in_flight.release()

    async def _logger_worker(self, spec: LoggerSpec) -> None:
        """Sends one logger's uploads in order, each after the reply to the one before."""
        queue = self._queues[spec.key]
        logger = self.logger(spec)
        while True:
            upload = await queue.get()
            try:
                await logger.upload(upload)
                self.frames += 1
            except Exception as exc:  # reported by the next drain; the worker goes on
                self.errors.append(exc)
            finally:
                queue.task_done()

    async def _drain(self) -> None:
        """Wait until every released action is done; raise the first error met."""
        for queue in self._queues.values():
            await queue.join()
        if self._publishing:
            await asyncio.gather(*self._publishing)
        if self.errors:
            first, self.errors = self.errors[0], []
            raise first

    def device_now(self) -> datetime:
        """The devices' clock: the time of the latest actions released, advanced by the wall
        time since (the local time before any were)."""
        if self._clock is None:
            return datetime.now()
        at, then = self._clock
        return at + timedelta(seconds=time.monotonic() - then)

    def live_loggers(self) -> list[LoggerSpec]:
        """The registered loggers still working (a dead one stays silent)."""
        out = []
        for plant in self.plants:
            specs = loggers_of(plant.k)
            out += [specs[name] for name in ("DA1", "DB1", "DW1")]
            out += [] if plant.dv1_dead else [specs["DV1"]]
        return out

    async def keep_alive(self, stop: asyncio.Event, every_s: float) -> None:
        """Heartbeats from the live loggers every `every_s` seconds until `stop` is set, on the
        devices' clock, queued behind whatever each logger is sending (errors go where the
        workers put theirs)."""
        while not stop.is_set():
            now = self.device_now()
            for spec in self.live_loggers():
                await self._release(Upload(now, spec, "9015"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
