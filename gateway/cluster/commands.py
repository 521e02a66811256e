"""Commands to devices across nodes: a rule worker asks, the ingestion process that holds the
device's connection sends.

A command is a NATS core request (not stored: a device connected nowhere cannot be asked
later) on `<rules_prefix>.cmd.history`, JSON `{"mn", "cn", "begin", "end"}` (ISO 8601 with
offsets). Every ingestion process subscribes; the one holding the MN's connection sends the
HJ 212 history request and replies `{"node", "qn"}`, the others count `not_connected` and stay
silent. No reply within `command_timeout_s` (or no subscriber at all) means nobody holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import datetime

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .config import ClusterSection
from .metrics import COMMAND_REQUESTS, COMMANDS
from .stream import connect

log = structlog.get_logger("gateway.cluster")

HISTORY = "history"
MAX_INFLIGHT = 1000  # commands awaiting their reply at once; past it a request is refused
UNREACHABLE_S = 60.0  # a device found connected nowhere is not asked again for this long
MAX_UNREACHABLE = 100_000

SendHistory = Callable[[str, str, datetime, datetime], str | None]


def history_subject(cfg: ClusterSection) -> str:
    return f"{cfg.rules_prefix}.cmd.history"


def encode(mn: str, cn: str, begin: datetime, end: datetime) -> bytes:
    body = {"mn": mn, "cn": cn, "begin": begin.isoformat(), "end": end.isoformat()}
    return json.dumps(body).encode()


def decode(data: bytes) -> tuple[str, str, datetime, datetime]:
    """A history command's MN, CN and period; ValueError when it is not one."""
    body = json.loads(data)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    try:
        mn, cn = str(body["mn"]), str(body["cn"])
        begin, end = datetime.fromisoformat(body["begin"]), datetime.fromisoformat(body["end"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a history command: {exc!r}") from exc
    if begin.tzinfo is None or end.tzinfo is None:
        raise ValueError("begin and end need their offsets")
    return mn, cn, begin, end


class CommandListener:
    """An ingestion process's side: sends the commands for the devices it holds."""

    def __init__(self, cfg: ClusterSection, send_history: SendHistory, *, node: str) -> None:
        self.cfg = cfg
        self.send_history = send_history
        self.node = node
        self._nc: Client | None = None
        self._sub: Subscription | None = None
        self._closing = False

    async def open(self) -> None:
        self._nc = await connect(self.cfg, f"{self.node}-commands", lambda: self._closing)
        self._sub = await self._nc.subscribe(history_subject(self.cfg), cb=self._on_history)
        await self._nc.flush()  # subscribed at the servers before the first command

    async def _on_history(self, msg: Msg) -> None:
        try:
            mn, cn, begin, end = decode(msg.data)
        except ValueError as exc:
            log.warning("device command not understood", error=str(exc))
            return
        qn = self.send_history(mn, cn, begin, end)
        if qn is None:
            COMMANDS.labels(kind=HISTORY, outcome="not_connected").inc()
            return
        COMMANDS.labels(kind=HISTORY, outcome="sent").inc()
        log.info("history request sent for another node", mn=mn, cn=cn, qn=qn)
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(json.dumps({"node": self.node, "qn": qn}).encode())

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is None:
            return
        self._closing = True
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await asyncio.wait_for(nc.close(), 2.0)


class CommandSender:
    """A rule worker's side: `request_backfill` is data_gap's callback.

    It returns at once; the command is delivered in the background. True means the command
    went out to the ingestion processes; which of them (if any) held the device is known
    only afterwards (`cluster_command_requests_total{outcome}`): a first request for a device
    connected nowhere is True, and data_gap's retries ask again. False means it did not go:
    the link is down, too many commands await their reply, or the device was found connected
    nowhere within the last minute. While `replaying()` (a partition taken over re-judges
    traffic judged before) nothing is sent and the answer is True: those requests were made
    when that traffic was first judged, and data_gap's retries of a gap still open go live.
    """

    def __init__(
        self,
        cfg: ClusterSection,
        *,
        node: str,
        replaying: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.node = node
        self.replaying = replaying
        self._nc: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreachable: dict[str, float] = {}  # MN -> monotonic time it was found so
        self._closing = False

    async def open(self) -> None:
        self._nc = await connect(self.cfg, f"{self.node}-commands", lambda: self._closing)

    def request_backfill(self, mn: str, cn: str, begin: datetime, end: datetime) -> bool:
        if self.replaying():
            COMMAND_REQUESTS.labels(kind=HISTORY, outcome="replayed").inc()
            return True
        nc = self._nc
        if nc is None or not nc.is_connected or len(self._tasks) >= MAX_INFLIGHT:
            COMMAND_REQUESTS.labels(kind=HISTORY, outcome="refused").inc()
            return False
        found = self._unreachable.get(mn)
        if found is not None and time.monotonic() - found < UNREACHABLE_S:
            COMMAND_REQUESTS.labels(kind=HISTORY, outcome="unreachable").inc()
            return False
        task = asyncio.create_task(self._deliver(nc, mn, encode(mn, cn, begin, end)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _deliver(self, nc: Client, mn: str, payload: bytes) -> None:
        try:
            reply = await nc.request(
                history_subject(self.cfg), payload, timeout=self.cfg.command_timeout_s
            )
        except (TimeoutError, nats.errors.NoRespondersError, nats.errors.TimeoutError):
            now = time.monotonic()
            if len(self._unreachable) >= MAX_UNREACHABLE:  # bounded: the stale go first
                self._unreachable = {
                    k: t for k, t in self._unreachable.items() if now - t < UNREACHABLE_S
                }
            self._unreachable[mn] = now
            COMMAND_REQUESTS.labels(kind=HISTORY, outcome="nobody").inc()
            log.info("history request: no node holds the device", mn=mn)
            return
        except nats.errors.Error as exc:
            COMMAND_REQUESTS.labels(kind=HISTORY, outcome="failed").inc()
            log.warning("history request not delivered", mn=mn, error=repr(exc))
            return
        self._unreachable.pop(mn, None)
        COMMAND_REQUESTS.labels(kind=HISTORY, outcome="delivered").inc()
        with contextlib.suppress(ValueError):
            log.info("history request delivered", mn=mn, **json.loads(reply.data))

    async def close(self) -> None:
        """Wait for the commands in flight (a reply or their timeout), then close."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        self._closing = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.cfg.command_timeout_s + 0.5)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await asyncio.wait_for(nc.close(), 2.0)
