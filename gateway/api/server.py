"""Serving the API in the gateway's own event loop with uvicorn.

The supervisor owns SIGTERM / SIGINT, so this server installs no signal handlers; it binds its
socket itself so that an unusable address fails `start()` with an OSError naming it, instead of
uvicorn's `sys.exit(1)` inside a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    """`await start()` returns once it accepts connections; `await close(timeout_s)` stops
    accepting, lets requests finish and cancels open event streams after the timeout."""

    def __init__(self, app: ASGIApp, listen: str, *, graceful_timeout_s: float = 2.0) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]") or "0.0.0.0"
        self.requested_port = int(port)
        self._server = _Server(
            uvicorn.Config(
                app,
                log_config=None,  # the gateway configures logging
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=max(1, round(graceful_timeout_s)),
            )
        )
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    async def start(self, timeout_s: float = 10.0) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno,
                f"API: cannot listen on {self.host}:{self.requested_port}: {exc.strerror}",
            ) from None
        sock.listen(1024)
        sock.setblocking(False)
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api")
        async with asyncio.timeout(timeout_s):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped it
                    raise RuntimeError("the API server stopped during start-up")
                await asyncio.sleep(0.01)

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
