"""InfluxDB 2.x / 3.x sink through influxdb-client's async client (org, bucket, token).

Only its transport is used: batching, retries and the spool are the gateway's own, because
the library's batching writer can lose buffered points on close.
"""

from __future__ import annotations

from typing import Any

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from gateway.influx.sink import WriteError, classify


class InfluxV2Sink:
    name = "influxdb2"

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str,
        gzip: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.org = org
        self.bucket = bucket
        self.token = token
        self.gzip = gzip
        self.timeout_ms = int(timeout_s * 1000)
        self._client: Any = None

    async def start(self) -> None:
        self._client = InfluxDBClientAsync(
            url=self.url,
            token=self.token,
            org=self.org,
            enable_gzip=self.gzip,
            timeout=self.timeout_ms,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def write(self, body: bytes) -> None:
        if self._client is None:
            raise RuntimeError("sink not started")
        try:
            await self._client.write_api().write(
                bucket=self.bucket, org=self.org, record=body, write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            headers: dict[str, str] = dict(exc.headers or {})
            raise classify(
                int(exc.status or 0), str(exc.body or exc.reason), headers.get("Retry-After")
            ) from None
        except (OSError, TimeoutError) as exc:
            raise WriteError(
                f"InfluxDB unreachable: {exc!r}", status=None, retryable=True
            ) from None
        except Exception as exc:  # aiohttp errors surface under several types through the client
            if type(exc).__module__.startswith("aiohttp"):
                raise WriteError(
                    f"InfluxDB unreachable: {exc!r}", status=None, retryable=True
                ) from None
            raise
