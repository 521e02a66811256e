"""A real headless Chromium driven over the DevTools protocol (a WebSocket, with aiohttp), for
page tests that act and wait: open a page, evaluate script in it, wait until a condition
holds, download a file. Times in the browser are Beijing time's zone on purpose (TZ)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # method + params
        self.exceptions: list[str] = []  # uncaught script errors of the page
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "method" in data:
                if data["method"] == "Runtime.exceptionThrown":
                    details = data["params"]["exceptionDetails"]
                    self.exceptions.append(details.get("exception", {}).get("description", ""))
                self.events.put_nowait(data)
                continue
            fut = self._waiting.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        await self.ws.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def eval(self, expression: str) -> Any:
        """The value of `expression` (awaited when it is a promise), as JSON."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait(self, expression: str, timeout_s: float = 15.0) -> Any:
        """Until `expression` is truthy; its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last: Any = None
        while loop.time() < deadline:
            try:
                last = await self.eval(expression)
            except RuntimeError:
                last = None  # the page is still loading
            if last:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"not true within {timeout_s} s: {expression} (last {last!r})")

    async def event(self, method: str, timeout_s: float = 15.0) -> dict[str, Any]:
        """The params of the next event named `method` (others are dropped)."""
        async with asyncio.timeout(timeout_s):
            while True:
                data = await self.events.get()
                if data["method"] == method:
                    return data["params"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


@asynccontextmanager
async def browser(profile: Path, downloads: Path | None = None) -> AsyncIterator[Page]:
    """A fresh headless Chromium with one page."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Debian's chromium is not installed (scripts/setup.sh installs it)")
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: ASYNC220 - it starts and runs beside the test
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TZ": "Asia/Shanghai"},
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            target = next(t for t in targets if t["type"] == "page")
            ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Runtime.enable")
            if downloads is not None:
                downloads.mkdir(parents=True, exist_ok=True)
                await page.call(
                    "Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads)
                )
            try:
                yield page
            finally:
                await page.close()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
