"""One upstream target: its cursor over the archive, its connection, delivery in archive order.

Each target runs as its own task with its own connection, so a target that is down or slow
costs the others and the devices nothing. Archive reads, re-framing and the cursor's and
delivery log's writes run in the forward service's own worker thread, never on the event loop
and never in the pool the spool and archive use.

Delivery: frames are sent in archive order, at most `window` unacknowledged (with `ack`) and
at most `rate_per_s`; the cursor moves over a prefix of records all delivered (acknowledged
with a 9014 of the same QN and MN, or, without `ack`, written to the socket), or passed over
(not for this target). No 9014 within `ack_timeout_s`, a refusal (9011 with QnRtn other than 1)
or a lost connection: the frames not acknowledged are sent again, in order, after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog

from gateway.archive.record import BEIJING, FrameRecord
from gateway.registry import Registry

from . import metrics
from .codec import Codec, WireFrame
from .config import ForwardTarget
from .cursor import Cursor, cursor_path, load_cursor, save_cursor
from .deliveries import Delivery, DeliveryLog
from .reader import (
    Entry,
    behind_bytes,
    end_cursor,
    first_after,
    history,
    read_batch,
    start_cursor,
)
from .reframe import HISTORY_COMMANDS, Upstream, answer, heartbeat, new_qn, reframe, time_upload

log = structlog.get_logger("gateway.forward")
T = TypeVar("T")
READ_LOW = 64  # read the next batch when fewer records than this wait
POLL_S = 0.2  # looking for new archive records when caught up
CONNECT_TIMEOUT_S = 10.0
MAX_HEARTBEAT_MNS = 1000
HISTORY_LIMIT = 5000  # frames answering one history request, at most
QNRTN_REASONS = {
    "2": "refused",
    "3": "bad_password",
    "4": "bad_mn",
    "5": "bad_st",
    "6": "bad_flag",
    "7": "bad_qn",
    "8": "bad_cn",
    "9": "bad_crc",
    "100": "unknown",
}


def _fixed(key: bytes | None) -> Callable[[str], bytes | None]:
    """A key lookup that gives `key` for any MN (the frame's device is known)."""
    return lambda _mn: key


@dataclass(slots=True)
class Item:
    """A record read for the target, until the cursor passes it."""

    entry: Entry
    frame: bytes | None = None  # None: not for this target (passed over)
    key: tuple[str, str] = ("", "")  # (QN, MN) its 9014 names
    cn: str = ""
    sent: bool = False
    done: bool = False
    attempts: int = 0
    closes: int = 0  # connections lost with it the oldest unacknowledged
    deadline: float = 0.0
    refused: str | None = None
    sent_at: datetime | None = None
    acked_at: datetime | None = None


class Target:
    """A target's runner. `open` loads (or creates) its cursor; `run` delivers until cancelled;
    `close` saves the cursor."""

    def __init__(
        self,
        cfg: ForwardTarget,
        archive_dir: Path,
        state_dir: Path,
        registry: Callable[[], Registry],
        default_tz: ZoneInfo,
        executor: ThreadPoolExecutor,
        codec: Codec,
    ) -> None:
        self.cfg = cfg
        self.codec = codec
        self.name = cfg.name
        self.archive_dir = archive_dir
        self.cursor_file = cursor_path(state_dir, cfg.name)
        self.deliveries = DeliveryLog(state_dir / cfg.name)
        self.registry = registry
        self.default_tz = default_tz
        self.executor = executor
        self.cursor = Cursor(None, 0, "")  # what is delivered
        self.read_pos = self.cursor  # where reading goes on
        self.queue: deque[Item] = deque()
        self.connected = False
        self.last_error = ""
        self._wake = asyncio.Event()
        self._gone = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._next_read = 0.0
        self._next_send = 0.0
        self._last_sent = time.monotonic()
        self._retry_s = cfg.backoff_min_s
        self._since_save = 0
        self._saved_at = time.monotonic()
        self._saved = self.cursor
        self._log: list[Delivery] = []
        self._mns: dict[str, None] = {}  # MNs delivered over the connection: heartbeats
        self._record_bytes = 600.0  # mean archive line, for the backlog's record estimate
        self._backlog_at = 0.0
        self.counts = {"sent": 0, "acked": 0, "retried": 0, "refused": 0, "lost": 0}
        self.backlog_bytes = 0
        self.lag_s = 0.0
        metrics.CONNECTED.labels(target=self.name).set(0)

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        saved = await self._off(load_cursor, self.cursor_file)
        if saved is None:
            today = datetime.now(BEIJING).date()
            begin = end_cursor if self.cfg.start == "end" else start_cursor
            saved = await self._off(begin, self.archive_dir, today)
            await self._off(self._save_new, saved)
            log.info("forward target begins", target=self.name, day=str(saved.day))
        self.cursor = self.read_pos = self._saved = saved

    def _save_new(self, cursor: Cursor) -> None:
        self.cursor_file.parent.mkdir(parents=True, exist_ok=True)
        save_cursor(self.cursor_file, cursor)

    async def close(self) -> None:
        """Save what is delivered (the run task is cancelled before)."""
        await self._save(force=True)
        self._disconnect()

    async def run(self) -> None:
        """Deliver, reconnecting with backoff, until cancelled."""
        backoff = self.cfg.backoff_min_s
        while True:
            delivered = self.counts["acked"] + self.counts["sent"]
            try:
                await self._session()
            except (OSError, ConnectionError, TimeoutError) as exc:
                self._note_error(f"{type(exc).__name__}: {exc}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the target: logged, retried
                log.exception("forward target failed; retrying", target=self.name)
                self._note_error(repr(exc))
            finally:
                self._lost_connection()
            if self.counts["acked"] + self.counts["sent"] > delivered:
                backoff = self.cfg.backoff_min_s
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.cfg.backoff_max_s)

    def _note_error(self, error: str) -> None:
        if error != self.last_error:
            log.warning("forward target unreachable or closed", target=self.name, error=error)
        self.last_error = error

    # -- the connection ---------------------------------------------------------------------

    async def _session(self) -> None:
        host, _, port = self.cfg.address.rpartition(":")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), CONNECT_TIMEOUT_S
        )
        self._writer = writer
        self._gone.clear()
        self._mns.clear()
        self.connected = True
        metrics.CONNECTED.labels(target=self.name).set(1)
        if self.last_error:
            log.info("forward target connected", target=self.name)
        self.last_error = ""
        requests: asyncio.Queue[WireFrame] = asyncio.Queue(16)
        reading = asyncio.create_task(self._read(reader, requests), name=f"forward-{self.name}-r")
        answering = asyncio.create_task(self._answer(requests), name=f"forward-{self.name}-a")
        try:
            await self._deliver(writer)
        finally:
            for task in (reading, answering):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _lost_connection(self) -> None:
        """After a connection ends: its unacknowledged frames go again on the next one; the
        oldest of them counts a refusal (`closed`) when connections keep ending on it."""
        self._disconnect()
        head = next((i for i in self.queue if i.sent and not i.done), None)
        if head is not None:
            head.closes += 1
            if head.closes >= 2:
                self._refuse("closed")
        for item in self.queue:
            if not item.done:
                item.sent = False

    def _disconnect(self) -> None:
        self.connected = False
        metrics.CONNECTED.labels(target=self.name).set(0)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, requests: asyncio.Queue[WireFrame]) -> None:
        """What the target sends: 9014 / 9011 for frames in flight, requests to answer."""
        framer = self.codec.splitter()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                for raw in framer.feed(chunk):
                    try:
                        frame = self.codec.parse(raw, self.cfg.key_for)
                    except self.codec.error:
                        continue
                    self._received(frame, requests)
        finally:
            self._gone.set()
            self._wake.set()

    def _received(self, frame: WireFrame, requests: asyncio.Queue[WireFrame]) -> None:
        if frame.cn in ("9014", "9011"):
            if not self.cfg.ack:
                return  # without `ack`, what the socket took is delivered
            item = self._inflight(frame.qn or "", frame.mn)
            if item is None:
                return
            if frame.cn == "9014":
                item.done = True
                item.acked_at = datetime.now(UTC)
                self.counts["acked"] += 1
                metrics.ACKED.labels(target=self.name).inc()
                self._retry_s = self.cfg.backoff_min_s
                self._wake.set()
                return
            try:
                rtn = self.codec.cp_params(frame.cp).get("QnRtn", "1")
            except self.codec.error:
                return
            if rtn != "1":
                item.refused = QNRTN_REASONS.get(rtn, f"qnrtn_{rtn}"[:16])
                self._wake.set()
            return
        if frame.cn in ("1011", "1012") or frame.cn in HISTORY_COMMANDS:
            try:
                requests.put_nowait(frame)
            except asyncio.QueueFull:
                log.warning("forward: request from the target dropped (busy)", target=self.name)

    def _inflight(self, qn: str, mn: str) -> Item | None:
        for item in self.queue:
            if item.sent and not item.done and item.key == (qn, mn):
                return item
        return None

    # -- delivery ---------------------------------------------------------------------------

    async def _deliver(self, writer: asyncio.StreamWriter) -> None:
        window = self.cfg.window if self.cfg.ack else 1
        while True:
            self._wake.clear()
            if self._gone.is_set():
                raise ConnectionError("the target closed the connection")
            now = time.monotonic()
            got = False
            if len(self.queue) < READ_LOW and now >= self._next_read:
                got = await self._read_more()
                if not got:
                    self._next_read = now + POLL_S
            refused = next((i for i in self.queue if i.refused), None)
            if refused is not None:
                self._refuse(refused.refused or "refused")
                await self._again()
                continue
            moved = await self._advance()
            inflight = sum(1 for i in self.queue if i.sent and not i.done)
            sent = 0
            for item in self.queue:
                if inflight >= window or self._gone.is_set():
                    break
                if item.done or item.sent or item.frame is None:
                    continue
                await self._pace()
                await self._send(writer, item)
                sent += 1
                if self.cfg.ack:
                    inflight += 1
                else:  # delivered once the socket took it
                    await self._drain(writer)
                    item.done = True
            await self._drain(writer)
            waiting = [i.deadline for i in self.queue if i.sent and not i.done]
            if waiting:
                left = min(waiting) - time.monotonic()
                if left <= 0:
                    await self._again()
                    continue
                await self._sleep(left)
            elif not (sent or moved or got):
                await self._idle(writer)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        """Wait for the socket to take what was written; a target that reads nothing for
        longer than its ack timeout (10 s at least) loses the connection."""
        await asyncio.wait_for(writer.drain(), max(self.cfg.ack_timeout_s, 10.0))

    async def _send(self, writer: asyncio.StreamWriter, item: Item) -> None:
        assert item.frame is not None
        if item.attempts:
            self.counts["retried"] += 1
            metrics.RETRIED.labels(target=self.name).inc()
        item.attempts += 1
        item.sent = True
        item.refused = None
        item.sent_at = datetime.now(UTC)
        item.deadline = time.monotonic() + self.cfg.ack_timeout_s
        writer.write(item.frame)
        self._last_sent = time.monotonic()
        self.counts["sent"] += 1
        metrics.SENT.labels(target=self.name).inc()
        mn = item.key[1]
        if mn not in self._mns and len(self._mns) < MAX_HEARTBEAT_MNS:
            self._mns[mn] = None

    async def _again(self) -> None:
        """No 9014 in time, or a refusal: wait the backoff, then send the unacknowledged
        frames again, in order."""
        await self._sleep(self._retry_s * random.uniform(0.8, 1.2))
        self._retry_s = min(self._retry_s * 2, self.cfg.backoff_max_s)
        for item in self.queue:
            if not item.done:
                item.sent = False

    def _refuse(self, reason: str) -> None:
        self.counts["refused"] += 1
        metrics.REFUSED.labels(target=self.name, reason=reason).inc()
        log.warning("forward: the target refused a frame", target=self.name, reason=reason)

    async def _pace(self) -> None:
        """At most `rate_per_s` frames a second."""
        now = time.monotonic()
        step = 1.0 / self.cfg.rate_per_s
        self._next_send = max(self._next_send, now - 1.0)  # a second's burst at most
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)
        self._next_send += step

    async def _sleep(self, seconds: float) -> None:
        """Sleep, woken early by an answer or a lost connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.0))

    async def _idle(self, writer: asyncio.StreamWriter) -> None:
        beat = self.cfg.heartbeat_s
        if beat and time.monotonic() - self._last_sent >= beat and self._mns:
            qn = new_qn(datetime.now(BEIJING))
            for mn in self._mns:
                up = self._upstream(mn)
                writer.write(heartbeat(self.codec, mn, up, qn))
            self._last_sent = time.monotonic()
            await self._drain(writer)
        await self._sleep(POLL_S)

    async def _read_more(self) -> bool:
        batch = await self._off(read_batch, self.archive_dir, self.read_pos)
        for day in batch.lost_days:
            self.counts["lost"] += 1
            metrics.LOST.labels(target=self.name, reason="pruned").inc()
            log.error(
                "forward: archive day deleted before the target read it; its frames do not go up",
                target=self.name,
                day=day.isoformat(),
            )
        if batch.cursor is not None:
            self.read_pos = batch.cursor
        if not batch.entries:
            return bool(batch.lost_days)
        first, last = batch.entries[0], batch.entries[-1]
        if len(batch.entries) > 1 and first.day == last.day:
            self._record_bytes = (last.end - first.end) / (len(batch.entries) - 1)
        items = await self._off(self._prepare, batch.entries)
        self.queue.extend(items)
        self._wake.set()
        return True

    def _prepare(self, entries: list[Entry]) -> list[Item]:
        """Items for the entries: the frame to send, or passed over (worker thread)."""
        registry = self.registry()
        cfg = self.cfg
        items = []
        for entry in entries:
            item = Item(entry, done=True)
            items.append(item)
            rec = entry.record
            if rec is None or (cfg.mns and rec.mn not in cfg.mns):
                continue
            device = registry.device(rec.mn)
            if device is None or (cfg.enterprises and device.enterprise not in cfg.enterprises):
                continue
            try:
                key = device.sm4_key
                frame = self.codec.parse(rec.raw, _fixed(key))
                if frame.cn not in cfg.cns:
                    continue
                item.frame = reframe(self.codec, rec.raw, key, self._upstream(rec.mn))
            except self.codec.error as exc:
                log.error("forward: an archived frame does not parse", mn=rec.mn, error=str(exc))
                continue
            item.key = (frame.qn or "", frame.mn)
            item.cn = frame.cn
            item.done = False
        return items

    def _upstream(self, mn: str) -> Upstream:
        cfg, device = self.cfg, self.registry().device(mn)
        from_2005 = device is not None and device.outlet.version == "2005"
        return Upstream(cfg.version_bits, cfg.password_for(mn), cfg.key_for(mn), cfg.ack, from_2005)

    async def _advance(self) -> bool:
        """Move the cursor over the records done at the head of the queue; whether it moved."""
        moved = False
        while self.queue and self.queue[0].done:
            item = self.queue.popleft()
            e = item.entry
            self.cursor = Cursor(e.day, e.end, e.hash)
            moved = True
            if item.frame is not None:
                self._since_save += 1
                rec = e.record
                assert rec is not None and item.sent_at is not None
                self._log.append(
                    Delivery(
                        e.hash, item.key[1], item.cn, rec.data_time, item.sent_at, item.acked_at
                    )
                )
        if not self.queue and self.read_pos.day is not None:
            self.cursor = self.read_pos  # past lost days and lines that are not records too
        if moved or self._since_save or self.cursor != self._saved:
            await self._save()
        return moved

    async def _save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        due = self._since_save >= self.cfg.cursor_every or now - self._saved_at >= (
            self.cfg.cursor_interval_s
        )
        if self.cursor == self._saved and not self._log:
            return
        if not (force or due):
            return
        cursor, entries, self._log = self.cursor, self._log, []
        self._since_save = 0
        self._saved_at = now
        await self._off(self._write_state, cursor, entries)
        self._saved = cursor

    def _write_state(self, cursor: Cursor, entries: list[Delivery]) -> None:
        self.deliveries.append(entries)  # the log first: it holds at least what the cursor passed
        save_cursor(self.cursor_file, cursor)

    async def refresh_backlog(self) -> None:
        """The backlog gauges (bytes of the archive after the cursor, records estimated) and
        the lag: the age of the oldest record not delivered (read or not yet read)."""
        self.backlog_bytes = await self._off(behind_bytes, self.archive_dir, self.cursor)
        oldest = next((i.entry.record for i in self.queue if not i.done and i.entry.record), None)
        if oldest is None and self.backlog_bytes and not self.queue:
            oldest = await self._off(first_after, self.archive_dir, self.cursor)
        now = datetime.now(UTC)
        self.lag_s = max((now - oldest.received_at).total_seconds(), 0.0) if oldest else 0.0
        metrics.LAG_SECONDS.labels(target=self.name).set(self.lag_s)
        metrics.BACKLOG_BYTES.labels(target=self.name).set(self.backlog_bytes)
        records = round(self.backlog_bytes / self._record_bytes)
        metrics.BACKLOG_RECORDS.labels(target=self.name).set(records)

    # -- the target's requests --------------------------------------------------------------

    async def _answer(self, requests: asyncio.Queue[WireFrame]) -> None:
        while True:
            request = await requests.get()
            writer = self._writer
            if writer is None:
                return
            try:
                await self._answer_one(writer, request)
            except (OSError, ConnectionError):
                return

    async def _answer_one(self, writer: asyncio.StreamWriter, request: WireFrame) -> None:
        registry = self.registry()
        device = registry.device(request.mn)
        cfg = self.cfg
        wanted = device is not None and (not cfg.mns or request.mn in cfg.mns)
        if device is not None and cfg.enterprises and device.enterprise not in cfg.enterprises:
            wanted = False
        expected = cfg.password_for(request.mn)
        if expected is None and device is not None:
            expected = device.outlet.password
        up = self._upstream(request.mn)
        if not wanted or device is None:
            writer.write(answer(self.codec, request, "9011", "QnRtn=4"))
            await self._drain(writer)
            return
        if expected is not None and request.pw != expected and not device.outlet.open:
            writer.write(answer(self.codec, request, "9011", "QnRtn=3"))
            await self._drain(writer)
            return
        tz = device.timezone or self.default_tz
        if request.wants_reply:
            writer.write(answer(self.codec, request, "9011", "QnRtn=1"))
        if request.cn == "1011":
            writer.write(time_upload(self.codec, request, datetime.now(tz), up))
        elif request.cn in HISTORY_COMMANDS:
            await self._history(writer, request, tz, device.sm4_key, up)
        writer.write(answer(self.codec, request, "9012", "ExeRtn=1"))
        await self._drain(writer)

    async def _history(
        self,
        writer: asyncio.StreamWriter,
        request: WireFrame,
        tz: ZoneInfo,
        device_key: bytes | None,
        up: Upstream,
    ) -> None:
        """The archived uploads of the request's MN and CN with DataTime in its window, marked
        back-filled (`RF=1` for 2025)."""
        try:
            params = self.codec.cp_params(request.cp)
            begin = self.codec.parse_time(params["BeginTime"]).replace(tzinfo=tz)
            end = self.codec.parse_time(params["EndTime"]).replace(tzinfo=tz)
        except (self.codec.error, KeyError):
            return
        end += timedelta(microseconds=999_999)
        records = await self._off(history, self.archive_dir, request.mn, begin, end)
        frames = await self._off(self._history_frames, records, request.cn, device_key, up)
        for frame in frames:
            await self._pace()
            writer.write(frame)
            await self._drain(writer)
            metrics.HISTORY.labels(target=self.name).inc()
        log.info(
            "forward: history request answered",
            target=self.name,
            mn=request.mn,
            cn=request.cn,
            frames=len(frames),
        )

    def _history_frames(
        self, records: list[FrameRecord], cn: str, device_key: bytes | None, up: Upstream
    ) -> list[bytes]:
        out: dict[bytes, None] = {}
        for rec in records:
            try:
                if self.codec.parse(rec.raw, _fixed(device_key)).cn != cn:
                    continue
                out.setdefault(reframe(self.codec, rec.raw, device_key, up, backfill=True))
            except self.codec.error:
                continue
        return list(out)

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        cursor = self.cursor
        return {
            "name": self.name,
            "address": self.cfg.address,
            "version": self.cfg.version,
            "connected": self.connected,
            "last_error": self.last_error or None,
            "backlog_bytes": self.backlog_bytes,
            "lag_s": round(self.lag_s, 3),
            **self.counts,
            "cursor": {
                "day": cursor.day.isoformat() if cursor.day else None,
                "offset": cursor.offset,
                "hash": cursor.hash or None,
            },
        }

    async def _off(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
