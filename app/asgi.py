"""The Starlette application: GraphQL over HTTP and websockets, health, lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from tortoise.connection import get_connection

from app.errors import DomainError
from app.graphql.context import Context
from app.graphql.events.frames import SharedFrames
from app.graphql.schema import build_schema
from app.kit.heap import settle_heap
from app.ops import logs, metrics, tracing
from app.ops.endpoint import metrics_endpoint
from app.ops.middleware import RequestContext
from app.runtime import Runtime
from app.settings import Settings, get_settings
from app.web.assets import vendor_route
from app.web.exports import download_endpoint
from app.web.graphiql import graphiql_html
from app.web.pages import page_routes

log = logging.getLogger(__name__)


class LiftoffGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with our typed context and websocket authentication."""

    graphql_transport_ws_handler_class = SharedFrames

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.runtime = runtime
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
        )
        self.settings = settings

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL with its assets served by this app, so it works without internet."""
        return graphiql_html()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        hub = self.runtime.hub if self.runtime else None
        live = self.runtime.live if self.runtime else None
        return Context(
            request=request, response=response, settings=self.settings, hub=hub, live=live
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            viewer = context.authenticate(header if isinstance(header, str) else None)
        except DomainError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from None
        return {"role": viewer.role.value}


def health_endpoint(runtime: Runtime) -> Any:
    """Liveness: the database must answer; Redis may be reconnecting (the outbox holds events)."""

    async def health(_: Request) -> Response:
        redis = runtime.hub.redis
        broker = (
            "memory" if redis is None else ("connected" if redis.is_connected else "reconnecting")
        )
        try:
            await get_connection("default").execute_query("SELECT 1")
        except Exception as exc:
            body = {"status": "unavailable", "database": str(exc), "broker": broker}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "broker": broker})

    return health


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; the lifespan opens the database and the event hub (and, without Redis,
    runs the outbox worker in this process)."""
    s = settings or get_settings()
    logs.configure(level=s.log_level, fmt=s.log_format)
    tracing.setup("liftoff-api")
    runtime = Runtime(s, run_worker=s.runs_inline_worker)
    graphql = LiftoffGraphQL(s, runtime)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Any]]:
        await runtime.start()
        settle_heap()
        try:
            yield {}
        finally:
            try:
                await asyncio.wait_for(runtime.stop(), timeout=max(1.0, s.shutdown_seconds / 2))
            except TimeoutError:
                log.warning("shutdown: resources not released in time; exiting anyway")
            metrics.mark_process_dead()
            tracing.shutdown()

    return Starlette(
        routes=[
            Route("/healthz", health_endpoint(runtime)),
            Route("/exports/{job_id}/download", download_endpoint(s)),
            Route("/metrics", metrics_endpoint(s)),
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            vendor_route(),
            *page_routes(s),
        ],
        lifespan=lifespan,
        middleware=[Middleware(RequestContext, count=s.metrics)],
    )
