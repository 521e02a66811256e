"""`/api/v1/anomalies/stream`: anomaly events as Server-Sent Events, resumable.

Each event is `id: <seq>`, `event: opened|updated|closed`, `data: <anomaly JSON>`. A client
resumes with `Last-Event-ID` (browsers send it on reconnect) or `?after=<seq>`: the events after
that seq are replayed from the store, then new ones follow as they are recorded. Without either,
the stream starts with the next event. A `: keep-alive` comment goes out when nothing else has
for `stream_heartbeat_s`. The stream ends when the client goes away (Starlette cancels it) or,
when `stream_max_s` is set, after that long (the client reconnects where it left off).

With the store in PostgreSQL (`[cluster] postgres_dsn`) the stream waits on the store, which
wakes on LISTEN/NOTIFY: a client of this node gets the events every node records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from starlette.responses import StreamingResponse

from ..anomalies.messages import summary
from ..anomalies.model import AnomalyEvent
from ..registry import Registry
from .auth import Reader
from .deps import READ_ERRORS, Services
from .lang import Lang, Language
from .schemas import AnomalyFamily, AnomalyType

MAX_SEQ = 2**62
RETRY_MS = 3000
KEEP_ALIVE = b": keep-alive\n\n"

Match = Callable[[AnomalyEvent], bool]

# One event, as OpenAPI 3.2 describes event streams (`itemSchema`); FastAPI does the same.
EVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "description": "seq of the event; send as Last-Event-ID"},
        "event": {"type": "string", "enum": ["opened", "updated", "closed"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/AnomalyOut"},
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def encode(event: AnomalyEvent, lang: Lang = "zh", registry: Registry | None = None) -> bytes:
    """One event as SSE; its summary rendered in `lang`."""
    body = event.anomaly.to_json()
    body["summary"] = summary(event.anomaly, lang, registry)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.event}\ndata: {data}\n\n".encode()


def matcher(
    enterprise: str | None,
    type_: str | None,
    family: str | None,
    sees: Callable[[str], bool] = lambda _enterprise: True,
    within: Callable[[str], bool] = lambda _enterprise: True,
) -> Match:
    """Events of the filters, within the scope `sees` allows (judged per event, so the scope
    follows registry reloads)."""

    def match(event: AnomalyEvent) -> bool:
        a = event.anomaly
        return (
            (enterprise is None or a.enterprise == enterprise)
            and sees(a.enterprise)
            and within(a.enterprise)
            and (type_ is None or a.type == type_)
            and (family is None or a.family == family)
        )

    return match


async def events(
    svc: Services, after: int, match: Match, lang: Lang = "zh"
) -> AsyncIterator[bytes]:
    """Replay after `after`, then follow the store; heartbeats while quiet."""
    loop = asyncio.get_running_loop()
    heartbeat_s = svc.stream_heartbeat_s
    ends_at = None if svc.stream_max_s is None else loop.time() + svc.stream_max_s
    svc.streams.open += 1
    svc.streams.opened_total += 1
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        next_beat = loop.time() + heartbeat_s
        last = after
        while True:
            batch = svc.store.events_after(last)
            if batch:
                for event in batch:
                    last = event.seq
                    if match(event):
                        yield encode(event, lang, svc.registry())
                        next_beat = loop.time() + heartbeat_s
                await asyncio.sleep(0)  # a long backlog of filtered-out events must not hog
                continue
            now = loop.time()
            if ends_at is not None and now >= ends_at:
                return
            if now >= next_beat:
                yield KEEP_ALIVE
                next_beat = now + heartbeat_s
            wake_at = next_beat if ends_at is None else min(next_beat, ends_at)
            # No await between events_after() above and this wait: no event can slip between.
            await svc.store.wait_for_events(max(wake_at - now, 0.0))
    finally:
        svc.streams.open -= 1


def _in_region(svc: Services, region: str, enterprise_id: str) -> bool:
    registry = svc.registry()
    ent = registry.enterprise(enterprise_id)
    return ent is not None and registry.regions.within(ent.region, [region])


def build_router(svc: Services) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/anomalies",
        tags=["anomalies"],
        responses=READ_ERRORS,
    )

    @router.get(
        "/stream",
        summary="Anomaly events as Server-Sent Events",
        # A media-type-less class, so the error responses stay documented as JSON; the 200
        # content is stated below.
        response_class=Response,
        responses={
            200: {
                "description": "`id: <seq>`, `event: opened|updated|closed`, "
                "`data: <anomaly JSON>`; `: keep-alive` comments while quiet",
                "content": {"text/event-stream": {"itemSchema": EVENT_SCHEMA}},
            }
        },
    )
    async def stream(
        caller: Reader,
        lang: Language,
        enterprise: str | None = None,
        region: Annotated[
            str | None, Query(description="a region id: its enterprises and those under it")
        ] = None,
        type_: Annotated[AnomalyType | None, Query(alias="type")] = None,
        family: AnomalyFamily | None = None,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_SEQ, description="replay events after this seq")
        ] = None,
        last_event_id: Annotated[
            int | None,
            Header(alias="Last-Event-ID", ge=0, le=MAX_SEQ, description="wins over `after`"),
        ] = None,
    ) -> EventStreamResponse:
        start = last_event_id if last_event_id is not None else after
        if start is None:
            start = svc.store.last_seq()
        return EventStreamResponse(
            events(
                svc,
                start,
                matcher(
                    enterprise,
                    type_,
                    family,
                    partial(svc.sees, caller),
                    (lambda _e: True) if region is None else partial(_in_region, svc, region),
                ),
                lang,
            ),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
