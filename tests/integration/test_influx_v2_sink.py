"""The InfluxDB 2.x/3.x sink (influxdb-client's async client as transport).

No InfluxDB 2.x/3.x server is packaged for this platform, so these tests run it against a
small real HTTP server speaking the ``/api/v2/write`` contract: what is sent (org, bucket,
precision, token, gzip) and how answers are classified for the forwarder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from devkit import localstack
from gateway.influx.sink import WriteError
from gateway.influx.v2 import InfluxV2Sink


@dataclass
class V2Server:
    url: str
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def v2_server() -> AsyncIterator[V2Server]:
    port = localstack.free_port()
    server = V2Server(f"http://127.0.0.1:{port}")

    async def write(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp undoes the gzip
        server.requests.append((dict(request.query), dict(request.headers), body))
        status, headers = server.answers.pop(0) if server.answers else (204, {})
        return web.Response(status=status, headers=headers, text="" if status == 204 else "{}")

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield server
    await runner.cleanup()


async def test_write_sends_org_bucket_ns_precision_token_and_gzip(v2_server: V2Server) -> None:
    sink = InfluxV2Sink(v2_server.url, org="bureau", bucket="pollution", token="s3cret")
    await sink.start()
    body = b"emission,mn=M avg=1.5 1700000000000000000\n"
    await sink.write(body)
    await sink.close()
    query, headers, received = v2_server.requests[0]
    assert query == {"org": "bureau", "bucket": "pollution", "precision": "ns"}
    assert headers["Authorization"] == "Token s3cret"
    assert headers.get("Content-Encoding") == "gzip"
    assert received == body


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "7"}, True, 7.0),
        (503, {}, True, None),
        (400, {}, False, None),
        (413, {}, False, None),
    ],
)
async def test_errors_are_classified_for_the_forwarder(
    v2_server: V2Server,
    status: int,
    headers: dict[str, str],
    retryable: bool,
    retry_after: float | None,
) -> None:
    v2_server.answers.append((status, headers))
    sink = InfluxV2Sink(v2_server.url, org="o", bucket="b", token="t")
    await sink.start()
    with pytest.raises(WriteError) as info:
        await sink.write(b"m v=1 1\n")
    await sink.close()
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert info.value.retry_after_s == retry_after
    assert info.value.too_large is (status == 413)


async def test_unreachable_server_is_retryable() -> None:
    sink = InfluxV2Sink(
        f"http://127.0.0.1:{localstack.free_port()}", org="o", bucket="b", token="t", timeout_s=2
    )
    await sink.start()
    with pytest.raises(WriteError) as info:
        await sink.write(b"m v=1 1\n")
    await sink.close()
    assert info.value.retryable and info.value.status is None
