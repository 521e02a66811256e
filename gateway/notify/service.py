"""The notifications as the supervisor wires them: the outbox, the anomaly store's listener, the
sender and the escalation, from the `[notify]` section."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from gateway import metrics
from gateway.ratelimit import LogLimiter

from ..anomalies.model import AnomalyEvent
from ..anomalies.store import AnomalyStore
from ..cases.store import CaseStore
from ..errors import ConfigError
from ..registry import Registry
from .config import NotifySection
from .escalation import Escalation
from .notices import Notice, anomaly_notices
from .outbox import Outbox, OutboxBackend
from .routing import route
from .sender import Sender

log = structlog.get_logger("gateway.notify")


class Notifier:
    """`on_anomaly` is the anomaly store's listener: it only writes the outbox, and never
    raises (a failure is counted in `errors_total{stage="notify"}` and logged, at most once a
    minute). At start, the pending rows of channels no longer configured are given up. `run`
    delivers and escalates until cancelled; `close` closes the outbox: the file at `where`, or
    the backend given (PostgreSQL's, shared by the nodes), which the notifier then owns."""

    def __init__(
        self,
        section: NotifySection,
        where: Path | OutboxBackend,
        registry: Callable[[], Registry],
        *,
        cases: CaseStore | None = None,
        anomalies: AnomalyStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        problems = [
            f"notify.channels: {c.name}: environment variable {c.secret_env} is not set"
            for c in section.channels
            if c.secret_env and c.secret_env not in os.environ
        ]
        lease_s = None if isinstance(where, Path) else where.lease_s
        if lease_s is not None and section.timeout_s * 2 > lease_s:
            problems.append(
                f"notify.timeout_s: {section.timeout_s:g} s is more than half the shared"
                f" outbox's lease ({lease_s:g} s): another node could send a notice in flight"
            )
        if problems:
            if not isinstance(where, Path):
                where.close()
            raise ConfigError(problems)
        self.section = section
        self.registry = registry
        self.clock = clock
        self.outbox = Outbox(where, max_pending=section.max_pending)
        self.sender = Sender(
            self.outbox,
            section.channels,
            link_base=section.link_base,
            secrets={
                c.name: os.environ[c.secret_env] if c.secret_env else None for c in section.channels
            },
            timeout_s=section.timeout_s,
            retry_initial_s=section.retry_initial_s,
            retry_max_s=section.retry_max_s,
            give_up_after=timedelta(hours=section.give_up_after_h),
            clock=clock,
        )
        self.escalation = (
            Escalation(
                cases,
                anomalies,
                registry,
                self.raise_notice,
                self.outbox.known_ids,
                unsigned_after=timedelta(hours=section.unsigned_after_h),
                clock=clock,
            )
            if cases is not None and anomalies is not None
            else None
        )
        self._limiter = LogLimiter(60.0)
        try:
            self.outbox.give_up_unconfigured({c.name for c in section.channels}, clock())
        except BaseException:
            self.outbox.close()
            raise

    def on_anomaly(self, event: AnomalyEvent) -> None:
        try:
            now = self.clock()
            anomaly = event.anomaly
            previous = self.outbox.severity_before(anomaly.id)
            for notice in anomaly_notices(event, previous, now, self.registry()):
                self.raise_notice(notice)
            if previous != anomaly.severity:  # only once queued: see `Outbox.record_severity`
                self.outbox.record_severity(anomaly.id, anomaly.severity, now)
        except Exception:
            metrics.ERRORS_TOTAL.labels(stage="notify").inc()
            suppressed = self._limiter.allow("listener", time.monotonic())
            if suppressed >= 0:
                log.exception(
                    "notice not queued",
                    anomaly=event.anomaly.id,
                    suppressed_since_last=suppressed,
                )

    def raise_notice(self, notice: Notice) -> None:
        """Queue `notice` for the channels that take it (once: see `Outbox.enqueue`)."""
        channels = route(notice, self.section.channels, self.registry().regions)
        queued = self.outbox.enqueue(notice, [c.name for c in channels])
        for name in queued.added:
            self.sender.wake(name)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.sender.run(), name="notify-sender")
            tg.create_task(self._escalate(), name="notify-escalation")

    async def escalate(self) -> list[Notice]:
        """One pass: the notices the escalation raised now. The case store is read in a worker
        thread (under its lock), the outbox written on the event loop."""
        if self.escalation is None:
            return []
        now = self.clock()
        cases = await asyncio.to_thread(self.escalation.candidates, now)
        return self.escalation.raise_due(now, cases)

    async def _escalate(self) -> None:
        """Scan the cases and prune the outbox at start and every interval."""
        while True:
            try:
                await self.escalate()
                self.outbox.prune(self.clock(), timedelta(hours=self.section.keep_delivered_h))
            except Exception:
                metrics.ERRORS_TOTAL.labels(stage="notify").inc()
                if self._limiter.allow("escalation", time.monotonic()) >= 0:
                    log.exception("case escalation failed; trying again at the next interval")
            await asyncio.sleep(self.section.escalation_interval_s)

    def close(self) -> None:
        self.outbox.close()
