"""A real HTTP receiver (aiohttp.web on a free loopback port) for the notification tests: it
answers as told (`mode`), checks the webhook signature and the DingTalk 加签 itself, and keeps
what it accepted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

from aiohttp import web

from devkit import localstack

Mode = Literal["ok", "fail", "hang", "errcode"]


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """`accepted` holds the requests answered 200 (robots: errcode 0); `refused` counts the
    others, `bad_signatures` the requests whose signature did not verify."""

    webhook_secret: bytes | None = None
    dingtalk_secret: str | None = None
    mode: Mode = "ok"
    port: int = 0
    accepted: list[Received] = field(default_factory=list)
    refused: int = 0
    hung: int = 0
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again) on `port`, a free one the first time."""
        if not self.port:
            self.port = localstack.free_port()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Stop listening: the port refuses connections until `start` again."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._release = asyncio.Event()

    def answer(self, mode: Mode) -> None:
        self.mode = mode
        if mode != "hang":
            self._release.set()
            self._release = asyncio.Event()

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """At least `count` accepted requests (fewer when `timeout_s` runs out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.accepted) < count and loop.time() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except TimeoutError:
                break
        return self.accepted

    async def wait_until(self, check: Any, timeout_s: float = 20.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not check() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return bool(check())

    def delivery_ids(self) -> list[str]:
        return [r.headers.get("X-Gateway-Delivery", "") for r in self.accepted]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        got = Received(request.path, dict(request.query), dict(request.headers), body)
        if not self._signed(got):
            self.bad_signatures += 1
            self._arrived.set()
            return web.Response(status=401)
        if self.mode == "hang":
            self.hung += 1
            self._arrived.set()
            await self._release.wait()
            return web.Response(status=503)
        if self.mode == "fail":
            self.refused += 1
            self._arrived.set()
            return web.Response(status=500, text="broken")
        if self.mode == "errcode":
            self.refused += 1
            self._arrived.set()
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.accepted.append(got)
        self._arrived.set()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _signed(self, got: Received) -> bool:
        if self.webhook_secret is not None and got.path.startswith("/hook"):
            stamp = got.headers.get("X-Gateway-Timestamp", "")
            mac = hmac.new(self.webhook_secret, stamp.encode() + b"." + got.body, hashlib.sha256)
            expected = "sha256=" + mac.hexdigest()
            return hmac.compare_digest(expected, got.headers.get("X-Gateway-Signature", ""))
        if self.dingtalk_secret is not None and got.path.startswith("/robot"):
            stamp = got.query.get("timestamp", "")
            to_sign = f"{stamp}\n{self.dingtalk_secret}".encode()
            digest = hmac.new(self.dingtalk_secret.encode(), to_sign, hashlib.sha256).digest()
            # the query arrives decoded: compare with the base64 itself
            return quote_plus(got.query.get("sign", "")) == quote_plus(
                base64.b64encode(digest).decode()
            )
        return True
