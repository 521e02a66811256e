"""Delivers the outbox: one asyncio task per channel, its rows in order, over one aiohttp
client session.

A failed attempt (no connection, a timeout of `timeout_s`, a non-2xx answer, a robot's non-zero
errcode) is counted and retried after 1, 2, 4 ... `retry_initial_s` doubled up to
`retry_max_s` (longer when the receiver sends `Retry-After`), holding the channel's later rows
back; the channel's first success resets the wait. A row still failing once it is older than
`give_up_after` is given up (counted, logged) and the next one goes. Cancelling the task (a
shutdown) leaves the row in hand pending: it is sent again after a restart, so a receiver may
get a notice twice; `X-Gateway-Delivery` (the notice id) tells it so.

Nothing here is ever awaited by ingestion: the anomaly store's listener only inserts rows.
Log lines never carry a channel's address (robot addresses hold their keys) nor its secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from gateway import metrics
from gateway.ratelimit import LogLimiter

from .config import Channel
from .formats import delivery, refusal
from .outbox import Outbox, Pending

log = structlog.get_logger("gateway.notify")

IDLE_POLL_S = 5.0  # an idle channel looks at the outbox at least this often
MAX_ANSWER_BYTES = 64 << 10


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        channels: Sequence[Channel],
        *,
        link_base: str,
        secrets: Mapping[str, str | None],
        timeout_s: float = 10.0,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 600.0,
        give_up_after: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        log_interval_s: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.channels = list(channels)
        self.link_base = link_base
        self.secrets = secrets
        self.timeout_s = timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.give_up_after = give_up_after
        self.clock = clock
        self._wake = {c.name: asyncio.Event() for c in self.channels}
        self._limiter = LogLimiter(log_interval_s)

    def wake(self, channel: str) -> None:
        """A row was added for `channel` (called on the event loop's thread)."""
        event = self._wake.get(channel)
        if event is not None:
            event.set()

    def backoff_s(self, failures: int, retry_after_s: float | None = None) -> float:
        """The wait after `failures` failures in a row."""
        wait = self.retry_initial_s * 2.0 ** min(failures - 1, 40)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.retry_max_s)

    async def run(self) -> None:
        """Deliver until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as tg:
            for channel in self.channels:
                tg.create_task(self._deliver(session, channel), name=f"notify-{channel.name}")

    async def _deliver(self, session: aiohttp.ClientSession, channel: Channel) -> None:
        """The channel's loop. An error of our own (the outbox's file) is counted in
        `errors_total{stage="notify"}`, logged, and the loop goes on after a pause: the
        notifications never stop the gateway."""
        while True:
            try:
                await self._deliver_rows(session, channel)
            except Exception:
                metrics.ERRORS_TOTAL.labels(stage="notify").inc()
                if self._limiter.allow(("error", channel.name), time.monotonic()) >= 0:
                    log.exception("notification sender failed; trying again", channel=channel.name)
                await asyncio.sleep(self.retry_max_s / 10)

    async def _deliver_rows(self, session: aiohttp.ClientSession, channel: Channel) -> None:
        failures = 0
        wake = self._wake[channel.name]
        while True:
            wake.clear()  # before looking: a row added from here on wakes the wait below
            row = self.outbox.head(channel.name)
            if row is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), IDLE_POLL_S)
                continue
            error, retry_after = await self.attempt(session, channel, row)
            if error is None:
                self.outbox.delivered(row, self.clock())
                metrics.NOTIFY_DELIVERED.labels(channel.name).inc()
                failures = 0
                continue
            failures += 1
            metrics.NOTIFY_FAILED.labels(channel.name).inc()
            if self.clock() - row.created_at >= self.give_up_after:
                self.outbox.given_up(row, self.clock(), error)
                metrics.NOTIFY_GIVEN_UP.labels(channel.name).inc()
                log.error(
                    "notice given up: its channel failed for too long",
                    channel=channel.name,
                    notice=row.notice.id,
                    attempts=row.attempts + 1,
                    error=error,
                )
                failures = 0
                continue
            self.outbox.failed(row, error)
            wait = self.backoff_s(failures, retry_after)
            suppressed = self._limiter.allow(channel.name, time.monotonic())
            if suppressed >= 0:
                log.warning(
                    "notice not delivered; retrying",
                    channel=channel.name,
                    notice=row.notice.id,
                    error=error,
                    retry_in_s=round(wait, 3),
                    pending=self.outbox.pending(channel.name),
                    suppressed_since_last=suppressed,
                )
            await asyncio.sleep(wait)

    async def attempt(
        self, session: aiohttp.ClientSession, channel: Channel, row: Pending
    ) -> tuple[str | None, float | None]:
        """One POST: (why it failed or None, the receiver's Retry-After in seconds)."""
        secret = self.secrets.get(channel.name)
        now_ms = int(self.clock().timestamp() * 1000)
        request = delivery(channel.kind, channel.url, row.notice, self.link_base, secret, now_ms)
        try:
            async with session.post(
                request.url, data=request.body, headers=request.headers, allow_redirects=False
            ) as response:
                answer = await _read_limited(response.content, MAX_ANSWER_BYTES)
                error = refusal(channel.kind, response.status, answer)
                return error, _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s", None
        except aiohttp.ClientConnectorError as exc:
            return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}", None
        except aiohttp.ClientError as exc:  # the text of some would show the address
            return f"{type(exc).__name__}", None


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The answer's first `limit` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
