"""The durable spool: an append-only, fsynced write-ahead log in front of InfluxDB.

Every record is appended and fsynced here before anything is acknowledged to a device; a
forwarder reads records in order, writes them to InfluxDB and then moves the cursor. When
InfluxDB is down the spool simply grows, and it is replayed in order when InfluxDB returns.

Bounded: when the unsent bytes reach `max_bytes`, appends wait (and so acks stop) until the
forwarder frees space; nothing is dropped. Appends that arrive while an fsync is under way are
committed together by the next one (group commit), so ack latency is about two fsyncs.

On disk: segment files and a cursor file, as `segments` describes; a torn record at the end
of the last segment (a crash mid-write; never acknowledged) is cut off at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway import metrics

from .segments import (
    RECORD_HEADER,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    Position,
    read_cursor,
    scan_segment,
    segment_name,
    segment_start,
)

log = structlog.get_logger("gateway.spool")


@dataclass(frozen=True, slots=True)
class ReadBatch:
    payloads: list[bytes]
    end: Position  # position after the last payload
    size: int  # bytes of spool the batch spans


class SpoolClosed(RuntimeError):
    pass


class SpoolFull(RuntimeError):
    """The spool is full and the bounded queue of records waiting for space too."""


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        cursor_interval_s: float = 0.5,
        max_waiting: int = 100_000,
    ) -> None:
        self.max_waiting = max_waiting
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.cursor_interval_s = cursor_interval_s
        self._pending: list[bytes] = []
        self._pending_futures: list[asyncio.Future[None]] = []
        self._group: asyncio.Future[None] | None = None  # shared by the records of one commit
        self._pending_bytes = 0
        self._committing = 0  # bytes of the commit being written
        self._waiting: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._data = asyncio.Event()
        self._sizes: dict[int, int] = {}
        self._starts: dict[int, int] = {}  # segment -> offset of its first record
        self._fd = -1
        self._segment = 0
        self._end = Position(0, 0)
        self._cursor = Position(0, 0)
        self._depth = 0
        self._cursor_saved_at = 0.0
        self._read_fds: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # what a commit waits for before it writes (the frame archive: every record queued so
        # far fsynced); its exception fails the commit, so nothing of it is acknowledged
        self.before_write: Callable[[], asyncio.Future[None] | None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Recover the on-disk state and start the commit task."""
        self.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._recover)
        self._task = asyncio.create_task(self._commit_loop(), name="spool-commit")
        metrics.SPOOL_DEPTH_BYTES.set(self._depth)

    async def close(self) -> None:
        """Commit everything accepted so far, save the cursor, close files. Idempotent."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None
        for fut in (f for _, f in self._waiting):
            if not fut.done():
                fut.set_exception(SpoolClosed("spool closed while the record waited for space"))
        self._waiting.clear()
        self._save_cursor(force=True)
        for fd in [self._fd, *self._read_fds.values()]:
            if fd >= 0:
                os.close(fd)
        self._read_fds.clear()
        self._fd = -1

    # -- writer side ------------------------------------------------------------------------

    def append(self, payload: bytes) -> asyncio.Future[None]:
        """Queue one record; the future completes once it is fsynced on disk.

        Records committed together share one future (do not cancel it).
        """
        if self._task is None or self._closing:
            raise SpoolClosed("spool is not open")
        if len(payload) + RECORD_HEADER.size > self.max_bytes:
            raise ValueError(f"record of {len(payload)} bytes exceeds the spool size")
        if self._waiting or not self._has_room(len(payload)):
            if not self._waiting:
                metrics.SPOOL_FULL_TOTAL.inc()
                log.warning("spool full, acknowledgements wait", depth_bytes=self._depth)
            if len(self._waiting) >= self.max_waiting:
                raise SpoolFull(f"spool full and {self.max_waiting} records already wait")
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((payload, fut))
            return fut
        return self._admit(payload, None)

    @property
    def depth_bytes(self) -> int:
        """Bytes on disk not yet delivered to InfluxDB (plus those being committed)."""
        return self._depth + self._pending_bytes

    @property
    def waiting(self) -> int:
        """Records waiting for space (the spool is full)."""
        return len(self._waiting)

    def _has_room(self, size: int) -> bool:
        used = self.depth_bytes + self._committing
        return used + size + RECORD_HEADER.size <= self.max_bytes

    def _admit(self, payload: bytes, fut: asyncio.Future[None] | None) -> asyncio.Future[None]:
        self._pending.append(payload)
        self._pending_bytes += len(payload) + RECORD_HEADER.size
        if fut is None:
            if self._group is None:
                self._group = asyncio.get_running_loop().create_future()
                self._pending_futures.append(self._group)
            fut = self._group
        else:
            self._pending_futures.append(fut)
        self._wake.set()
        return fut

    async def _commit_loop(self) -> None:
        while True:
            if not (self._pending or self._closing):
                await self._wake.wait()
            self._wake.clear()
            while self._waiting and self._has_room(len(self._waiting[0][0])):
                self._admit(*self._waiting.popleft())
            if self._pending:
                await self._commit_pending()
            elif self._closing:
                return

    async def _commit_pending(self) -> None:
        """Write and fsync the pending records; resolve their futures either way."""
        batch, self._pending = self._pending, []
        futures, self._pending_futures = self._pending_futures, []
        self._group = None
        size, self._pending_bytes = self._pending_bytes, 0
        self._committing = size
        data = b"".join(RECORD_HEADER.pack(len(p), zlib.crc32(p)) + p for p in batch)
        started = time.perf_counter()
        try:
            ready = self.before_write() if self.before_write is not None else None
            if ready is not None:
                await asyncio.shield(ready)
            await asyncio.to_thread(self._write, data)
        except Exception as exc:  # disk full, I/O error: nothing of this batch is acknowledged
            log.error("spool write failed; records not acknowledged", error=repr(exc))
            metrics.ERRORS_TOTAL.labels(stage="spool").inc()
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._committing = 0
        metrics.SPOOL_COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.SPOOL_RECORDS.inc(len(batch))
        self._depth += size
        metrics.SPOOL_DEPTH_BYTES.set(self._depth)
        for fut in futures:
            if not fut.done():
                fut.set_result(None)
        self._data.set()

    def _write(self, data: bytes) -> None:
        """Append and fsync (in a worker thread; only the commit task calls it). On failure the
        segment is cut back to its last good length, so no partial record stays behind."""
        segment = self._segment
        size = self._sizes[segment]
        if size > self._starts[segment] and size + len(data) > self.segment_bytes:
            fd = self._create_segment(segment + 1)  # before any state changes
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd, self._segment = fd, segment + 1
            self._sizes[self._segment] = self._starts[self._segment] = SEGMENT_HEADER_SIZE
            segment = self._segment
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._sizes[segment])
            raise
        self._sizes[segment] += len(data)
        self._end = Position(segment, self._sizes[segment])

    # -- reader side ------------------------------------------------------------------------

    @property
    def cursor(self) -> Position:
        return self._cursor

    @property
    def end(self) -> Position:
        """Position after the last durable record."""
        return self._end

    async def wait_for_data(self, after: Position, timeout_s: float) -> bool:
        """Wait until durable data exists beyond `after`; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._end <= after or not self._has_data_after(after):
            self._data.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._data.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def _has_data_after(self, pos: Position) -> bool:
        if pos.segment < self._end.segment:
            return True
        return max(pos.offset, self._starts.get(pos.segment, 0)) < self._end.offset

    def read(self, start: Position, max_records: int, max_bytes: int = 2 << 20) -> ReadBatch:
        """Durable records from `start` on, at most `max_records` / about `max_bytes`."""
        payloads: list[bytes] = []
        pos, size = start, 0
        while len(payloads) < max_records and size < max_bytes:
            seg_size = (
                self._sizes.get(pos.segment, 0)
                if pos.segment != self._end.segment
                else (self._end.offset)
            )
            if pos.offset < self._starts.get(pos.segment, 0):  # a segment's start: skip its header
                pos = Position(pos.segment, self._starts[pos.segment])
            if pos.offset >= seg_size:
                if pos.segment >= self._end.segment:
                    break
                pos = Position(pos.segment + 1, self._starts.get(pos.segment + 1, 0))
                continue
            chunk = os.pread(
                self._reader(pos.segment), min(max_bytes, seg_size - pos.offset), pos.offset
            )
            used = 0
            while used + RECORD_HEADER.size <= len(chunk) and len(payloads) < max_records:
                length, crc = RECORD_HEADER.unpack_from(chunk, used)
                body_end = used + RECORD_HEADER.size + length
                if pos.offset + body_end > seg_size:  # cannot be a record: corruption
                    used = self._skip_corrupt(pos, seg_size)
                    break
                if body_end > len(chunk):
                    break
                payload = chunk[used + RECORD_HEADER.size : body_end]
                if zlib.crc32(payload) != crc:
                    used = self._skip_corrupt(pos, seg_size)
                    break
                payloads.append(payload)
                used = body_end
            if used == 0 and len(chunk) and not payloads:
                # a record larger than max_bytes: read exactly that record
                length, _ = RECORD_HEADER.unpack_from(chunk, 0)
                max_bytes = length + RECORD_HEADER.size
                continue
            if used == 0:
                break
            pos = Position(pos.segment, pos.offset + used)
            size += used
        return ReadBatch(payloads, pos, size)

    def _skip_corrupt(self, pos: Position, seg_size: int) -> int:
        metrics.ERRORS_TOTAL.labels(stage="spool_corrupt").inc()
        log.error("corrupt spool record: rest of the segment skipped", segment=pos.segment)
        return seg_size - pos.offset

    def commit(self, batch: ReadBatch) -> None:
        """The records of `batch` are delivered: move the cursor, free space, drop old segments."""
        self._cursor = batch.end
        self._depth -= batch.size
        metrics.SPOOL_DEPTH_BYTES.set(self._depth)
        done = [s for s in self._sizes if s < self._cursor.segment]
        if done:
            self._save_cursor(force=True)  # before the segments go, or a crash loses count
        for seg in done:
            del self._sizes[seg]
            self._starts.pop(seg, None)
            fd = self._read_fds.pop(seg, -1)
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / segment_name(seg)).unlink()
        self._save_cursor(force=False)
        if self._waiting:
            self._wake.set()

    def _reader(self, segment: int) -> int:
        fd = self._read_fds.get(segment)
        if fd is None:
            fd = self._read_fds[segment] = os.open(
                self.directory / segment_name(segment), os.O_RDONLY
            )
        return fd

    # -- disk state ---------------------------------------------------------------------------

    def _save_cursor(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._cursor_saved_at < self.cursor_interval_s:
            return
        self._cursor_saved_at = now
        tmp = self.directory / "cursor.tmp"
        try:
            with tmp.open("w") as out:
                out.write(f"{self._cursor.segment} {self._cursor.offset}\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.directory / "cursor")
        except OSError as exc:  # an old cursor only means records are written again
            metrics.ERRORS_TOTAL.labels(stage="spool_cursor").inc()
            log.error("could not save the spool cursor", error=str(exc))

    def _create_segment(self, segment: int) -> int:
        """Create a segment holding only its header, durably; its descriptor for appending.
        On failure no file is left behind."""
        path = self.directory / segment_name(segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        try:
            if os.write(fd, SEGMENT_HEADER) != len(SEGMENT_HEADER):
                raise OSError(f"short write of the segment header of {path}")
            os.fdatasync(fd)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return fd

    def _recover(self) -> None:
        segments = sorted(int(p.name[4:-4]) for p in self.directory.glob("seg-*.log"))
        cursor = Position(segments[0] if segments else 0, 0)
        cursor_file = self.directory / "cursor"
        if cursor_file.exists():
            saved = read_cursor(cursor_file)
            if saved is not None:
                cursor = saved
            else:  # unreadable: replay everything still on disk (duplicates are harmless)
                log.warning("spool cursor unreadable; replaying every segment")
        for seg in segments:
            if seg < cursor.segment:
                (self.directory / segment_name(seg)).unlink()
        segments = [s for s in segments if s >= cursor.segment]
        if not segments:
            segments = [cursor.segment]
            cursor = Position(cursor.segment, 0)
        elif cursor.segment not in segments:  # its segment is gone: start at the oldest left
            cursor = Position(segments[0], 0)
        last = segments[-1]
        for seg in segments[:-1]:  # the last one is read whole below
            path = self.directory / segment_name(seg)
            with path.open("rb") as f:
                start = segment_start(path, f.read(SEGMENT_HEADER_SIZE))
            size = path.stat().st_size
            if start is None:  # a header cut short: created, never written to
                log.warning("spool segment without a whole header skipped", segment=seg)
                start = size
            self._sizes[seg], self._starts[seg] = size, start
        path = self.directory / segment_name(last)
        data = path.read_bytes() if path.exists() else b""
        scan = scan_segment(path, data)
        if scan.start is None or scan.end == 0:  # no file, or no whole header or record in it
            if data:
                log.warning("incomplete spool segment started again", segment=last)
            path.unlink(missing_ok=True)
            self._fd = self._create_segment(last)
            self._sizes[last] = self._starts[last] = SEGMENT_HEADER_SIZE
        else:
            if scan.end < len(data):
                log.warning(
                    "torn record cut from spool tail", segment=last, bytes=len(data) - scan.end
                )
                os.truncate(path, scan.end)
            self._sizes[last], self._starts[last] = scan.end, scan.start
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._segment = last
        self._end = Position(last, self._sizes[last])
        start = self._starts[cursor.segment]
        cursor = Position(cursor.segment, max(cursor.offset, start))
        if cursor.segment == last and cursor.offset > self._end.offset:
            cursor = self._end
        self._cursor = cursor
        self._depth = sum(self._sizes[s] - self._starts[s] for s in self._sizes) - (
            cursor.offset - start
        )
        if self._depth:
            log.info("spool holds undelivered records", depth_bytes=self._depth)
