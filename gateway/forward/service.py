"""The forward targets of a gateway: started after the archive opens, closed before it closes.

One task per target, one worker thread for their archive reads and state writes (not the
default pool, which the spool and the archive's writer use), and a housekeeping task: backlog
gauges every second, delivery logs pruned with the archive hourly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from gateway.archive.files import day_files
from gateway.registry import Registry

from .codec import Codec
from .config import ForwardTarget
from .reader import prune_logs
from .target import Target

log = structlog.get_logger("gateway.forward")
BACKLOG_EVERY_S = 1.0
PRUNE_EVERY_S = 3600.0


class ForwardService:
    def __init__(
        self,
        targets: list[ForwardTarget],
        archive_dir: Path,
        state_dir: Path,
        registry: Callable[[], Registry],
        default_tz: ZoneInfo,
        codec: Codec,
    ) -> None:
        self.archive_dir = archive_dir
        self.state_dir = state_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.targets = [
            Target(t, archive_dir, state_dir, registry, default_tz, self._executor, codec)
            for t in targets
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load (or create) each target's cursor and start delivering."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for target in self.targets:
            await target.open()
        self._tasks = [asyncio.create_task(t.run(), name=f"forward-{t.name}") for t in self.targets]
        self._tasks.append(asyncio.create_task(self._housekeep(), name="forward-housekeeping"))
        log.info("forwarding upstream", targets=[t.name for t in self.targets])

    async def close(self) -> None:
        """Stop the targets and save their cursors (what was acknowledged). Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if tasks:
            for target in self.targets:
                try:
                    await target.close()
                except OSError as exc:
                    log.error("forward cursor not saved", target=target.name, error=repr(exc))
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def status(self) -> list[dict[str, Any]]:
        """Per target: connection, backlog, lag, counts and cursor (the API's status)."""
        return [t.status() for t in self.targets]

    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        pruned_at = 0.0
        while True:
            for target in self.targets:
                try:
                    await target.refresh_backlog()
                except OSError as exc:
                    log.warning("forward backlog not measured", target=target.name, error=str(exc))
            if loop.time() - pruned_at >= PRUNE_EVERY_S:
                pruned_at = loop.time()
                await loop.run_in_executor(self._executor, self._prune)
            await asyncio.sleep(BACKLOG_EVERY_S)

    def _prune(self) -> None:
        """Delivery logs older than the archive's oldest day file go (worker thread)."""
        files = day_files(self.archive_dir)
        oldest = files[0][0] if files else None
        for target in self.targets:
            try:
                prune_logs(self.state_dir / target.name, oldest)
            except OSError as exc:
                log.warning("forward delivery log not pruned", target=target.name, error=str(exc))
