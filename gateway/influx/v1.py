"""InfluxDB 1.x sink: ``POST /write?db=...&precision=ns`` with gzip, over aiohttp."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp

from gateway.influx.sink import WriteError, classify


class InfluxV1Sink:
    name = "influxdb1"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        gzip_level: int = 1,
        timeout_s: float = 30.0,
        create_database: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.params = {"db": database, "precision": "ns"}
        if retention_policy:
            self.params["rp"] = retention_policy
        self.auth = aiohttp.BasicAuth(username, password or "") if username else None
        self.gzip_level = gzip_level
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.create_database = create_database
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout, auth=self.auth)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ensure_database(self) -> None:
        """Create the database if configured to (idempotent in InfluxDB 1.x)."""
        session = self._require()
        query = f'CREATE DATABASE "{self.database}"'
        try:
            async with session.post(f"{self.url}/query", data={"q": query}) as resp:
                if resp.status >= 300:
                    raise classify(resp.status, await resp.text(), resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WriteError(f"InfluxDB unreachable: {exc}", status=None, retryable=True) from None

    async def write(self, body: bytes) -> None:
        session = self._require()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.gzip_level:
            # zlib releases the GIL: compressing off the event loop keeps acks flowing
            data = await asyncio.to_thread(gzip.compress, body, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        try:
            async with session.post(
                f"{self.url}/write", params=self.params, data=data, headers=headers
            ) as resp:
                if resp.status == 204:
                    return
                text = await resp.text()
                if resp.status == 404 and self.create_database and "database not found" in text:
                    await self.ensure_database()
                raise classify(resp.status, text, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WriteError(
                f"InfluxDB unreachable: {exc!r}", status=None, retryable=True
            ) from None

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("sink not started")
        return self._session
