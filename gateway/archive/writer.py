"""The archive writer: frame records are handed over in memory and appended to the day file by
one task, in groups, each group written and fsynced at once (like the spool's group commit).

The handler's part costs no I/O: `put` queues a record, `make_room` says (before a data upload
is stored) whether its record will be taken. `durable` gives the spool what it waits for before
it writes: a future done once every record queued so far is fsynced, so a point reaches the
spool only after its frame's record is on disk.

Bounded: the queue holds at most `queue_bytes` (frame bytes plus 256 per record). Past half of
it, refused frames' records are dropped and counted; when full, the other records are dropped
and data uploads are refused (`ArchiveFull`: not stored, not acknowledged; the device resends,
as with a full spool). On disk, day files older than `retention_days` and, past `max_bytes`,
the oldest day files are deleted (counted, logged, and noted in `pruned.jsonl` with their last
hash). When today's file alone reaches `max_bytes`, records are dropped and data uploads refused
until the next Beijing day lets yesterday's file go.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog

from gateway.ingest.spool import SpoolFull

from . import metrics
from .files import (
    Pruned,
    append_pruned,
    chain_start,
    day_files,
    day_path,
    fsync_dir,
    last_hash,
    last_line,
    remove,
    write_current,
)
from .record import BEIJING, GENESIS, FrameRecord, RecordError, encode, split_line

log = structlog.get_logger("gateway.archive")
RECORD_OVERHEAD = 256  # bytes a queued record counts beyond its frame


class ArchiveFull(SpoolFull):
    """The archive cannot take the frame's record now: the frame is not stored and not
    acknowledged (the device resends)."""

    reason = "archive_full"


class ArchiveWriteError(OSError):
    """A group of records could not be written; nothing waiting on it is acknowledged."""


def cost(record: FrameRecord) -> int:
    """What a queued record counts against `queue_bytes`."""
    return len(record.raw) + RECORD_OVERHEAD


class FrameArchive:
    """The archive folder's one writer. `open` before use, `close` after the spool's close."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 8 << 30,
        retention_days: int = 180,
        queue_bytes: int = 64 << 20,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.retention_days = retention_days
        self.queue_bytes = queue_bytes
        self.clock = clock
        self._queue: list[tuple[FrameRecord, float]] = []  # (record, queued at, monotonic)
        self._queued = 0
        self._next: asyncio.Future[None] | None = None  # done once the queued records are
        self._inflight: asyncio.Future[None] | None = None  # ... and the ones being written
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # writer state (the writer task's worker thread, one step at a time)
        self._fd = -1
        self._day: date | None = None  # the day file appended to
        self._last = GENESIS
        self._sizes: dict[date, int] = {}
        self._total = 0
        self._full_day: date | None = None  # the day whose file alone reached max_bytes
        self._checked: date | None = None  # the day retention was last applied for

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Find the chain's end on disk (cutting a torn last line), apply retention and the
        size cap, and start the writer."""
        await asyncio.to_thread(self._recover)
        await asyncio.to_thread(self._housekeep)
        self._task = asyncio.create_task(self._run(), name="archive-writer")

    async def close(self) -> None:
        """Write and fsync what is queued, then close the day file. Idempotent."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the handler's side -----------------------------------------------------------------

    def make_room(self, raw: bytes) -> None:
        """Before a data upload is stored: ArchiveFull when its record would not be taken."""
        if self._task is None or self._closing:
            raise ArchiveFull("the frame archive is not open")
        if self._queued + len(raw) + RECORD_OVERHEAD > self.queue_bytes:
            raise ArchiveFull(f"the frame archive's queue holds {self._queued} bytes")
        if self._full_day is not None and self._today() <= self._full_day:
            raise ArchiveFull(f"the frame archive reached max_bytes ({self.max_bytes}) today")

    def put(self, record: FrameRecord) -> bool:
        """Queue a record for the writer; False when it is dropped (counted)."""
        size = cost(record)
        reason = None
        if self._task is None or self._closing:
            reason = "closed"
        elif self._full_day is not None and record.day <= self._full_day:
            reason = "size_cap"
        elif record.verdict != "accepted" and self._queued + size > self.queue_bytes // 2:
            reason = "queue_half_full_refused"
        elif self._queued + size > self.queue_bytes:
            reason = "queue_full"
        if reason is not None:
            metrics.DROPPED.labels(reason=reason).inc()
            return False
        self._queue.append((record, time.monotonic()))
        self._queued += size
        metrics.QUEUE_BYTES.set(self._queued)
        self._wake.set()
        return True

    def durable(self) -> asyncio.Future[None] | None:
        """A future done once every record queued so far is fsynced (its exception: they could
        not be written); None when nothing is pending. Shared: do not cancel it."""
        if self._queue:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            return self._next
        return self._inflight

    @property
    def queued_bytes(self) -> int:
        return self._queued

    @property
    def last_hash(self) -> str:
        """The hash of the last record written."""
        return self._last

    # -- the writer -------------------------------------------------------------------------

    def _today(self) -> date:
        return self.clock().astimezone(BEIJING).date()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._queue = self._queue, []
            self._queued = 0
            metrics.QUEUE_BYTES.set(0)
            fut = self._next or loop.create_future()
            self._next = None
            self._inflight = fut
            started = time.perf_counter()
            try:
                written = await asyncio.to_thread(self._write, [r for r, _ in batch])
            except Exception as exc:  # disk full, I/O error: nothing waiting on it is acked
                log.error("archive write failed; frames not acknowledged", error=repr(exc))
                metrics.DROPPED.labels(reason="write_failed").inc(len(batch))
                fut.set_exception(ArchiveWriteError(f"archive write failed: {exc!r}"))
                fut.exception()  # seen here: a group nobody waited on must not warn
            else:
                metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
                metrics.RECORDS.inc(len(batch))
                metrics.BYTES.inc(written)
                metrics.LAG_SECONDS.set(time.monotonic() - batch[0][1])
                fut.set_result(None)
            finally:
                self._inflight = None
            if self._total > self.max_bytes or self._today() != self._checked:
                try:
                    await asyncio.to_thread(self._housekeep)
                except Exception as exc:  # the writer must go on: the spool waits on it
                    log.error("archive housekeeping failed", error=repr(exc))

    def _write(self, records: list[FrameRecord]) -> int:
        """Append and fsync (worker thread). On failure the file is cut back to its last good
        length and the chain goes on from the last record written."""
        written = 0
        buf: list[bytes] = []
        for record in records:
            if self._day is None or record.day > self._day:
                written += self._flush(buf)
                buf = []
                self._open_day(record.day)
            line, self._last = encode(record, self._last)
            buf.append(line)
        return written + self._flush(buf)

    def _flush(self, buf: list[bytes]) -> int:
        if not buf or self._day is None:
            return 0
        data = b"".join(buf)
        day = self._day
        good = self._sizes.get(day, 0)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fdatasync(self._fd)
        except OSError:
            os.ftruncate(self._fd, good)
            self._last = last_hash(day_path(self.directory, day)) or self._chain_before(day)
            raise
        self._sizes[day] = good + len(data)
        self._total += len(data)
        metrics.SIZE_BYTES.set(self._total)
        return len(data)

    def _open_day(self, day: date) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._day is not None:
                log.info(
                    "archive day closed",
                    day=self._day.isoformat(),
                    bytes=self._sizes.get(self._day, 0),
                    last_hash=self._last,
                )
        path = day_path(self.directory, day)
        existed = path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        if not existed:
            write_current(self.directory, day, self._last)  # fsyncs the folder too
        self._day = day
        self._sizes.setdefault(day, os.fstat(self._fd).st_size)

    def _chain_before(self, day: date) -> str:
        """The last hash before `day`'s file: the previous file's, or the deleted days'."""
        earlier = [(d, p) for d, p in day_files(self.directory) if d < day]
        if earlier:
            return last_hash(earlier[-1][1]) or GENESIS
        return chain_start(self.directory, day)

    def _recover(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        files = day_files(self.directory)
        self._sizes = {d: p.stat().st_size for d, p in files}
        self._total = sum(self._sizes.values())
        metrics.SIZE_BYTES.set(self._total)
        if not files:
            self._last = chain_start(self.directory, None)
            return
        day, path = files[-1]
        line, keep = last_line(path)
        if keep < self._sizes[day]:
            log.warning(
                "torn record cut from the archive's tail",
                day=day.isoformat(),
                bytes=self._sizes[day] - keep,
            )
            os.truncate(path, keep)
            self._total -= self._sizes[day] - keep
            self._sizes[day] = keep
        if line is None:
            self._last = self._chain_before(day)
        else:
            try:
                self._last = split_line(line)[0]
            except RecordError:
                log.error(
                    "the archive's last record is unreadable; verify shows the break",
                    day=day.isoformat(),
                )
                self._last = GENESIS
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._day = day

    def _housekeep(self) -> None:
        """Delete day files past retention, then the oldest ones while over max_bytes (never
        the one being written); note whether today's file alone fills the cap."""
        today = self._today()
        cutoff = today - timedelta(days=self.retention_days)
        for day in sorted(self._sizes):
            if day < cutoff and day != self._day:
                self._delete(day, "retention")
        while self._total > self.max_bytes:
            older = sorted(d for d in self._sizes if d != self._day)
            if not older:
                break
            self._delete(older[0], "size")
        self._checked = today
        full = self._total >= self.max_bytes and self._day is not None
        if full and self._full_day is None:
            log.error(
                "the archive's day file alone reached max_bytes: records are dropped and data "
                "uploads refused until the next day",
                day=str(self._day),
                max_bytes=self.max_bytes,
            )
        self._full_day = self._day if full else None

    def _delete(self, day: date, reason: str) -> None:
        path = day_path(self.directory, day)
        size = self._sizes.pop(day)
        digest = last_hash(path) if path.exists() else None
        if digest is not None:  # a day without records leaves the chain where it was
            deleted_at = self.clock().astimezone(BEIJING).isoformat(timespec="seconds")
            append_pruned(self.directory, Pruned(day, digest, size, reason, deleted_at))
        remove(path)
        fsync_dir(self.directory)
        self._total -= size
        metrics.SIZE_BYTES.set(self._total)
        metrics.DAYS_DELETED.labels(reason=reason).inc()
        event = (
            "archive at its size cap: oldest day deleted"
            if reason == "size"
            else ("archive day past retention deleted")
        )
        log.warning(
            event, day=day.isoformat(), bytes=size, last_hash=digest, max_bytes=self.max_bytes
        )
