"""The HJ 212 server's open connections and what bounds them, without sockets.

Connections are counted per remote address (devices, and the unproven oldest first) and in
all; at a cap the oldest unproven connection in the cap's scope is closed for the new one. The
deadline queues map a connection to when its clock started, oldest first, so a sweep looks at
the connections that expire, not at all of them. The MN index and the connections with open
back-fill windows live here too, so that a connection leaves every table at once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

from gateway import metrics

from .config import Hj212Config


class Limited(Protocol):
    """A connection as the accounting sees it."""

    attached: bool  # counted in the connections
    proven: bool  # an accepted frame came over it
    mns: tuple[str, ...]  # MNs seen on it

    @property
    def address(self) -> str: ...

    def refuse(self, reason: str) -> None:
        """Turn the new connection away (it was never counted)."""

    def close(self, reason: str) -> None:
        """Close it for `reason`; it calls `forget` itself."""


C = TypeVar("C", bound=Limited)


class Address(Generic[C]):
    """The connections from one remote address: devices and the unproven, oldest first."""

    __slots__ = ("proven", "unproven")

    def __init__(self) -> None:
        self.proven = 0  # connections that have sent an accepted frame
        self.unproven: OrderedDict[C, None] = OrderedDict()


class ConnectionLimits(Generic[C]):
    """Every open connection: counts per address and in all, deadline queues, MN index."""

    def __init__(self, config: Hj212Config) -> None:
        self.config = config
        self.connections: set[C] = set()
        self.by_mn: dict[str, C] = {}
        self.addresses: dict[str, Address[C]] = {}
        # deadline queues, oldest first: connection -> when its clock started
        self.unproven: OrderedDict[C, float] = OrderedDict()  # connected at
        self.idle: OrderedDict[C, float] = OrderedDict()  # last complete frame
        self.partial: OrderedDict[C, float] = OrderedDict()  # frame begun at
        self.write_blocked: OrderedDict[C, float] = OrderedDict()  # paused at
        self.backfilling: set[C] = set()

    @property
    def per_address(self) -> dict[str, int]:
        """Open connections by remote address."""
        return {a: s.proven + len(s.unproven) for a, s in self.addresses.items()}

    def admit(self, conn: C, now: float) -> bool:
        """Count a new connection in, or refuse it. At a cap, the oldest connection without an
        accepted frame in the cap's scope (its address, or all) is closed for the new one; an
        address with `max_connections_per_address` connections, or a server whose every
        connection has sent an accepted frame, refuses it."""
        cfg = self.config
        addr = self.addresses.get(conn.address)
        if addr is not None:
            if addr.proven + len(addr.unproven) >= cfg.max_connections_per_address:
                conn.refuse("max_connections_per_address")
                return False
            if len(addr.unproven) >= cfg.max_unproven_per_address:
                next(iter(addr.unproven)).close("max_unproven_per_address")
        if len(self.connections) >= cfg.max_connections:
            if not self.unproven:
                conn.refuse("max_connections")
                return False
            next(iter(self.unproven)).close("max_connections")
        addr = self.addresses.setdefault(conn.address, Address())  # closing may have dropped it
        conn.attached = True
        self.connections.add(conn)
        addr.unproven[conn] = None
        self.unproven[conn] = now
        self.idle[conn] = now
        metrics.CONNECTIONS_OPEN.set(len(self.connections))
        return True

    def prove(self, conn: C) -> None:
        """`conn` sent its first accepted frame: it counts as a device of its address."""
        conn.proven = True
        del self.unproven[conn]
        addr = self.addresses[conn.address]
        del addr.unproven[conn]
        addr.proven += 1

    def forget(self, conn: C) -> None:
        """Take a closing or lost connection out of every count and deadline queue."""
        if not conn.attached:
            return
        conn.attached = False
        self.connections.discard(conn)
        addr = self.addresses.get(conn.address)
        if addr is not None:
            if conn.proven:
                addr.proven -= 1
            else:
                addr.unproven.pop(conn, None)
            if not addr.proven and not addr.unproven:
                del self.addresses[conn.address]
        for queue in (self.unproven, self.idle, self.partial, self.write_blocked):
            queue.pop(conn, None)
        self.backfilling.discard(conn)
        for mn in conn.mns:
            if self.by_mn.get(mn) is conn:
                del self.by_mn[mn]
        metrics.CONNECTIONS_OPEN.set(len(self.connections))


K = TypeVar("K")


def due(queue: OrderedDict[K, float], before: float) -> list[tuple[K, float]]:
    """The entries of a deadline queue whose clock started before `before`, oldest first."""
    entries: list[tuple[K, float]] = []
    for conn, since in queue.items():
        if since >= before:
            break
        entries.append((conn, since))
    return entries


def restart(queue: OrderedDict[K, float], conn: K, now: float) -> None:
    """Start `conn`'s clock in a deadline queue again, at the end (the newest)."""
    queue[conn] = now
    queue.move_to_end(conn)
