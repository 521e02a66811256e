"""`/api/v1/anomalies/stream` through the real server (uvicorn, `ApiServer`) on a free port:
httpx's ASGI transport buffers whole responses, so it cannot test a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.anomalies.messages import summary
from gateway.anomalies.store import AnomalyStore
from gateway.api.server import ApiServer
from gateway.registry import Registry
from tests.api.conftest import T0, VIEWER, make_anomaly

H = timedelta(hours=1)


@dataclass
class Event:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


@pytest.fixture
async def serve(make_app: Callable[..., FastAPI]) -> AsyncIterator[Callable[..., Any]]:
    """serve(**create_app overrides) -> (app, base URL); servers stop at the end of the test."""
    servers: list[ApiServer] = []

    async def start(**overrides: Any) -> tuple[FastAPI, str]:
        app = make_app(**overrides)
        server = ApiServer(app, "127.0.0.1:0", graceful_timeout_s=1)
        await server.start()
        servers.append(server)
        return app, f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


async def read_events(lines: AsyncIterator[str], count: int, timeout_s: float = 5) -> list[Event]:
    """The next `count` events (comment-only blocks included), parsed as EventSource does."""
    events: list[Event] = []
    current = Event()
    async with asyncio.timeout(timeout_s):
        async for line in lines:
            if line == "":
                if current.event or current.data or current.comments:
                    events.append(current)
                    if len(events) == count:
                        return events
                current = Event()
            elif line.startswith(":"):
                current.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    current.data += value
                elif name in ("id", "event"):
                    setattr(current, name, value)
    raise AssertionError(f"stream ended after {events}")


def fill(store: AnomalyStore) -> list[int]:
    """Five events: opened x3 (E1, E2, E1), updated, closed. Their seqs."""
    a1 = make_anomaly(subject="mn:A")
    a2 = make_anomaly(enterprise="E2", subject="mn:B", type_="device_offline")
    a3 = make_anomaly(subject="mn:C", started_at=T0 + H)
    seqs = []
    for anomaly in (a1, a2, a3, a1.updated(T0 + H / 2, value=15.0), a2.closed(T0 + 2 * H)):
        event = store.record(anomaly)
        assert event is not None
        seqs.append(event.seq)
    return seqs


async def test_resume_from_last_event_id_then_live(
    serve: Callable[..., Any], store: AnomalyStore, registry: Registry
) -> None:
    seqs = fill(store)
    _, url = await serve()
    headers = {**VIEWER, "Last-Event-ID": str(seqs[1])}
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("GET", "/api/v1/anomalies/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        replayed = await read_events(lines, 3)
        assert [(e.id, e.event) for e in replayed] == [
            (str(seqs[2]), "opened"),
            (str(seqs[3]), "updated"),
            (str(seqs[4]), "closed"),
        ]
        stored = [store.events_after(seqs[1])[i].anomaly for i in range(3)]
        rendered = [{**a.to_json(), "summary": summary(a, "zh", registry)} for a in stored]
        assert [httpx.Response(200, content=e.data).json() for e in replayed] == rendered

        live = make_anomaly(subject="mn:LIVE", type_="treatment_not_running")
        event = store.record(live)
        assert event is not None
        [pushed] = await read_events(lines, 1)
        assert (pushed.id, pushed.event) == (str(event.seq), "opened")
        assert httpx.Response(200, content=pushed.data).json() == {
            **live.to_json(),
            "summary": summary(live, "zh", registry),
        }


async def test_after_parameter_and_header_precedence(
    serve: Callable[..., Any], store: AnomalyStore
) -> None:
    seqs = fill(store)
    _, url = await serve()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        params = {"after": seqs[0]}
        async with client.stream(
            "GET", "/api/v1/anomalies/stream", params=params, headers=VIEWER
        ) as response:
            assert [e.id for e in await read_events(response.aiter_lines(), 4)] == [
                str(s) for s in seqs[1:]
            ]
        # a reconnecting browser keeps the URL (?after=) and sends Last-Event-ID: the header wins
        headers = {**VIEWER, "Last-Event-ID": str(seqs[3])}
        async with client.stream(
            "GET", "/api/v1/anomalies/stream", params=params, headers=headers
        ) as response:
            assert [e.id for e in await read_events(response.aiter_lines(), 1)] == [str(seqs[4])]


async def test_filters_apply_to_replay_and_live(
    serve: Callable[..., Any], store: AnomalyStore
) -> None:
    seqs = fill(store)
    _, url = await serve()
    params = {"after": 0, "enterprise": "E2", "type": "device_offline"}
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("GET", "/api/v1/anomalies/stream", params=params, headers=VIEWER) as response,
    ):
        lines = response.aiter_lines()
        replayed = await read_events(lines, 2)
        assert [(e.id, e.event) for e in replayed] == [
            (str(seqs[1]), "opened"),
            (str(seqs[4]), "closed"),
        ]
        store.record(make_anomaly(subject="mn:X", started_at=T0 + 5 * H))  # E1: filtered out
        wanted = store.record(make_anomaly(enterprise="E2", subject="mn:Y", type_="device_offline"))
        assert wanted is not None
        [pushed] = await read_events(lines, 1)
        assert pushed.id == str(wanted.seq)


async def test_without_a_position_only_new_events(
    serve: Callable[..., Any], store: AnomalyStore
) -> None:
    fill(store)
    app, url = await serve()
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("GET", "/api/v1/anomalies/stream", headers=VIEWER) as response,
    ):
        lines = response.aiter_lines()
        async with asyncio.timeout(5):  # the handler has run once the stream is open
            while app.state.services.streams.open == 0:
                await asyncio.sleep(0.01)
        event = store.record(make_anomaly(subject="mn:NEW"))
        assert event is not None
        [first] = await read_events(lines, 1)
        assert first.id == str(event.seq)


async def test_heartbeat_while_quiet(serve: Callable[..., Any]) -> None:
    _, url = await serve(stream_heartbeat_s=0.2)
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("GET", "/api/v1/anomalies/stream", headers=VIEWER) as response,
    ):
        beats = await read_events(response.aiter_lines(), 2, timeout_s=3)
        assert [(b.comments, b.id, b.data) for b in beats] == [(["keep-alive"], None, "")] * 2


async def test_stream_ends_when_the_client_goes_away(serve: Callable[..., Any]) -> None:
    app, url = await serve()
    streams = app.state.services.streams
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(3):
            async with client.stream("GET", "/api/v1/anomalies/stream", headers=VIEWER) as response:
                assert response.status_code == 200
                async with asyncio.timeout(5):
                    while streams.open == 0:
                        await asyncio.sleep(0.01)
            # leaving the block closes the connection
    async with asyncio.timeout(5):
        while streams.open:
            await asyncio.sleep(0.01)
    assert streams.opened_total == 3


async def test_stream_max_s_ends_the_response(
    serve: Callable[..., Any], store: AnomalyStore
) -> None:
    seqs = fill(store)
    _, url = await serve(stream_max_s=0.3)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/api/v1/anomalies/stream?after=0", headers=VIEWER)
    assert response.status_code == 200
    assert response.text.count("\nevent: ") == len(seqs)


async def test_server_close_ends_open_streams_in_bounded_time(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app()
    server = ApiServer(app, "127.0.0.1:0", graceful_timeout_s=1)
    await server.start()
    streams = app.state.services.streams
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client,
        client.stream("GET", "/api/v1/anomalies/stream", headers=VIEWER) as response,
    ):
        assert response.status_code == 200
        async with asyncio.timeout(5):
            while streams.open == 0:
                await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await server.close(timeout_s=5)
        assert loop.time() - began < 3
        assert streams.open == 0


async def test_an_unusable_address_fails_start(make_app: Callable[..., FastAPI]) -> None:
    first = ApiServer(make_app(), "127.0.0.1:0")
    await first.start()
    try:
        second = ApiServer(make_app(), f"127.0.0.1:{first.port}")
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.close()
