"""The Starlette application."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from tortoise import connections

from api import logs
from api.account_pages import routes as account_routes
from api.authentication import BearerAuthentication
from api.authorize import SecureErrors
from api.cors import CrossOrigin, RefusalLog
from api.gateway import DeviceGateway
from api.graphql.schema import build_schema
from api.graphql.view import GraphQLEndpoint
from api.http_errors import HANDLERS, ServerErrors
from api.middleware import BodyLimit, RequestContext
from api.oauth_routes import routes as oauth_routes
from api.sse import routes as sse_routes
from api.usage_csv import routes as usage_routes
from auth import signing_keys, web_origins
from auth.oauth import AuthorizationServer
from billing import publishes, scheduler
from billing.ledger import Ledger
from billing.notifications import Outbox
from billing.pauses import Pauses
from core import metering
from core.broker import create_broker
from core.settings import Settings, get_settings
from fleet import code_pruning, events, gateway, outbox, rpc
from models import db

log = logging.getLogger("devicecloud")
# Billing's emails go out through the fleet's outbox.
OUTBOX = Outbox(enqueue=outbox.enqueue_email, wake=outbox.notify)


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception as error:  # any failure to reach the database means "not ready"
        log.warning("database not reachable", extra={"error": repr(error)})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def create_app(settings: Settings | None = None, *, manage_database: bool = True) -> Starlette:
    """Build the app. With `manage_database=False` the caller owns the ORM connections
    (tests that share them with the app)."""
    settings = settings or get_settings()
    logs.configure(settings.log_level)
    broker = create_broker(settings.broker_url, settings.broker_channel_prefix)
    origins = web_origins.WebOrigins(broker, settings.cors_origins)
    refusals = RefusalLog(origins)
    endpoint = GraphQLEndpoint(build_schema(settings), settings, origins=origins,
                               refusals=refusals)
    graphql = BearerAuthentication(endpoint)
    graphql_route = Route("/graphql", graphql, methods=["GET", "POST"])
    graphql_route.methods = {"GET", "POST"}  # Starlette adds HEAD beside GET: GraphQL has none

    router = rpc.Router(broker, settings.function_call_timeout)
    device_gateway = DeviceGateway(settings, router)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_database:
            await db.connect(settings.database_url)
        try:
            await signing_keys.check_readable(settings)
        except signing_keys.SigningKeyUnreadable:
            raise  # a changed SECRET_KEY: stop here rather than fail every sign-in
        except Exception as error:  # the database is down: /readyz says so, as before
            log.warning("signing key not checked", extra={"error": repr(error)})
        await broker.start()
        event_log = events.EventLog(broker)
        pauses = Pauses(broker)
        meter = Ledger(pauses.paused_until) if settings.usage_metering else metering.UNMETERED
        try:
            with (
                events.installed(event_log),
                rpc.installed(router),
                web_origins.installed(origins),
                metering.installed(meter),
            ):
                try:
                    async with (
                        origins.running(),
                        pauses.running(),
                        publishes.counting(1) if settings.usage_metering
                        else contextlib.nullcontext(),
                        router.running(),
                        outbox.sender(settings),
                        scheduler.running(settings.usage_tick_interval, broker=broker,
                                          outbox=OUTBOX),
                        gateway.presence_sweeper(settings),
                        device_gateway.heard_flusher(),
                        events.pruner(settings),
                        code_pruning.pruner(settings),
                    ):
                        # What start-up built lives as long as the process: leave it out of
                        # every full collection, which would otherwise pause the event loop
                        # for as long as scanning it takes.
                        gc.freeze()
                        log.info(
                            "started",
                            extra={"environment": settings.environment.value, "pid": os.getpid()},
                        )
                        yield
                finally:
                    await event_log.close()
                    await meter.close()
        finally:
            await broker.close()
            if manage_database:
                await db.disconnect()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *oauth_routes,
        *account_routes,
        *sse_routes,
        *usage_routes,
        graphql_route,
        WebSocketRoute("/graphql", graphql),
        WebSocketRoute("/device/v1", device_gateway),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContext),
            Middleware(CrossOrigin, origins=origins, routes=routes, refusals=refusals),
            Middleware(ServerErrors),
            Middleware(SecureErrors),
            Middleware(
                BodyLimit,
                max_bytes=settings.max_body_bytes,
                max_upload_bytes=settings.max_upload_bytes,
            ),
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.broker = broker
    app.state.oauth_server = AuthorizationServer(settings)
    return app
