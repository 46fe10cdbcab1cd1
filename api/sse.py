"""Server-sent events: live product and device event streams in Particle's wire format.

    GET /v1/products/{idOrSlug}/events[/{prefix}]
    GET /v1/devices/{deviceId}/events[/{prefix}]

with a bearer token in `Authorization` (or `?access_token=`, since browsers' EventSource cannot
set headers). The response opens with `:ok`, then carries each event as

    id: 123
    event: temperature
    data: {"data":"21.5","ttl":60,"published_at":"2026-01-02T03:04:05.678Z","coreid":"…"}

and a keep-alive comment every `sse_keepalive` seconds. `Last-Event-ID` resumes after that event
from history. A subscriber that reads too slowly gets `event: spark/stream/missed` with
`data: {"missed":N}` where it lost N events (-1: an unknown number); devices cannot publish
`spark…` names, so it never collides with an event. When the stream ends (the subscriber's
access ended, or the device moved to another product), the response's last message is
`event: spark/stream/ended` with `data: {"code":…,"message":…}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.authentication import BearerAuthentication, principal_of
from auth import tokens
from core.errors import CoreCode, DomainError, ErrorCode, Unauthenticated
from core.settings import Settings
from fleet import live
from fleet.events import TTL

log = logging.getLogger("devicecloud.sse")

MISSED_EVENT = "spark/stream/missed"
ENDED_EVENT = "spark/stream/ended"
SERVER_COREID = "particle-internal"  # the `coreid` of events a product's server published

OpenStream = Callable[..., Awaitable[live.EventStream]]


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` of a live stream, entered (subscribed) by the caller and left when
    the response ends: when the client goes away or the subscriber's access ends."""

    def __init__(self, stream: live.EventStream, keepalive: float) -> None:
        self._stream = stream
        self._keepalive = keepalive
        super().__init__(
            self._frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Unsubscribes whether the stream ended, failed or the client disconnected.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.__aexit__(None, None, None)

    async def _frames(self) -> AsyncIterator[bytes]:
        yield b":ok\n\n"
        while True:
            try:
                item = await self._stream.next(within=self._keepalive)
            except DomainError as error:
                log.info("event stream ended", extra={"code": error.code})
                ended = {"code": str(error.code), "message": error.message}
                yield f"event: {ENDED_EVENT}\ndata: {_json(ended)}\n\n".encode()
                return
            yield b":\n\n" if item is None else frame(item)


def frame(item: live.StreamItem) -> bytes:
    """One SSE message: an event as Particle sends it, or a missed-events notice."""
    if isinstance(item, live.Missed):
        return f"event: {MISSED_EVENT}\ndata: {_json({'missed': item.count})}\n\n".encode()
    payload = {
        "data": item.data,
        "ttl": TTL,
        "published_at": _particle_time(item.published_at),
        "coreid": item.device_id or SERVER_COREID,
    }
    return f"id: {item.id}\nevent: {item.name}\ndata: {_json(payload)}\n\n".encode()


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _particle_time(moment: datetime) -> str:
    """UTC with milliseconds and `Z`, e.g. 2026-01-02T03:04:05.678Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def product_events(request: Request) -> Response:
    return await _respond(request, live.product_stream, request.path_params["id_or_slug"])


async def device_events(request: Request) -> Response:
    return await _respond(request, live.device_stream, request.path_params["device_id"])


async def _respond(request: Request, open_stream: OpenStream, key: str) -> Response:
    principal = principal_of(request)
    if principal is None:
        return _token_required()
    settings: Settings = request.app.state.settings
    last_event_id = request.headers.get("last-event-id", "")
    try:
        after = live.parse_event_id(last_event_id, field="Last-Event-ID") if last_event_id else None
        stream = await open_stream(
            principal,
            key,
            token=tokens.bearer_token(request.headers.get("authorization")),
            settings=settings,
            prefix=request.path_params.get("prefix"),
            after=after,
        )
        # Entered here, so that a token over its cap of streams gets its 429 (`LimitReached`).
        await stream.__aenter__()
    except DomainError as error:
        return _error(error.http_status, error.message, error.code)
    return EventStreamResponse(stream, settings.sse_keepalive)


def _error(status: int, message: str, code: ErrorCode, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _token_required() -> JSONResponse:
    """RFC 6750 §3.1: a request without credentials gets a challenge without an error code."""
    return _error(Unauthenticated.http_status, "An access token is required.",
                  CoreCode.UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"})


class QueryToken:
    """Take `?access_token=` as the bearer token when no `Authorization` header came, as
    Particle does. The request log records the path without the query, so it never shows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "authorization" not in Headers(scope=scope):
            token = QueryParams(scope.get("query_string", b"")).get("access_token")
            if token is not None:
                header = (b"authorization", f"Bearer {token}".encode())
                scope = {**scope, "headers": [*scope["headers"], header]}
        await self.app(scope, receive, send)


def _authenticated(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """The endpoint behind bearer authentication (a bad token gets 401 before it runs)."""
    return QueryToken(BearerAuthentication(request_response(endpoint)))


routes = [
    Route(path, _authenticated(endpoint), methods=["GET"])
    for path, endpoint in (
        ("/v1/products/{id_or_slug}/events", product_events),
        ("/v1/products/{id_or_slug}/events/{prefix:path}", product_events),
        ("/v1/devices/{device_id}/events", device_events),
        ("/v1/devices/{device_id}/events/{prefix:path}", device_events),
    )
]
