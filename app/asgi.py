"""The Starlette application: GraphQL over HTTP and websockets, health, lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app import headers, probes
from app.accounts import access, apikeys
from app.errors import DomainError
from app.graphql import idempotent, requests
from app.graphql.context import Context
from app.graphql.errors import plain
from app.graphql.events.frames import SharedFrames
from app.graphql.ratelimits import client_address, refusal
from app.graphql.schema import build_schema
from app.graphql.sessions import Sessions
from app.kit.heap import QuietTrim, settle_heap
from app.kit.ratelimit import Limiter
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
        self.limiter = Limiter(settings.redis_url, local_share=settings.rate_local_share)
        super().__init__(
            build_schema(settings, limiter=self.limiter),
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
        )
        self.settings = settings
        self.sessions = Sessions()
        self.trim = QuietTrim()
        self.limits = requests.RequestLimits(
            max_body_bytes=settings.max_body_bytes,
            max_json_depth=settings.max_json_depth,
            max_string_chars=settings.max_variable_chars,
            max_list_items=settings.max_variable_items,
            max_response_bytes=settings.max_response_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.sessions.discard(scope)
                self.trim.released_one()
            return
        limit = self.limits.max_body_bytes
        try:
            requests.check_declared_length(scope, limit)
            response = await self.run(Request(scope, receive=requests.bounded(receive, limit)))
        except (requests.RequestRefused, idempotent.Answered) as refused:
            response = refused.response()
        except HTTPException as exc:
            response = requests.RequestRefused(exc.status_code, exc.reason).response()
        await response(scope, receive, send)

    async def parse_http_body(self, request: Any) -> Any:
        data = await super().parse_http_body(request)
        if not isinstance(data, list):
            requests.refuse_subscription(data.query, data.operation_name, self.settings.max_tokens)
        return data

    async def execute_single(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """One operation; a mutation with an `Idempotency-Key` runs once per key."""
        request, data, context = kwargs["request"], kwargs["request_data"], kwargs["context"]
        raw_key = headers.request_header(request.scope, idempotent.HEADER_NAME)
        viewer = context._viewer
        run = super().execute_single
        if (
            raw_key is None
            or viewer is None
            or not idempotent.is_mutation(data.query, data.operation_name, self.settings.max_tokens)
        ):
            return await run(**kwargs)
        sub_response = kwargs["sub_response"]

        async def answer(result: Any) -> tuple[int, Any]:
            return sub_response.status_code or 200, await self.process_result(request, result)

        return await idempotent.run_once(
            viewer=viewer,
            raw_key=raw_key,
            query=data.query,
            variables=data.variables,
            operation_name=data.operation_name,
            execute=lambda: run(**kwargs),
            answer=answer,
        )

    def parse_json(self, data: str | bytes) -> Any:
        return requests.decode(data, self.limits)

    def decode_json(self, data: str | bytes) -> object:
        return requests.decode_message(data)

    def encode_json(self, data: object) -> str | bytes:
        encoded = super().encode_json(data)
        if len(encoded) > self.limits.max_response_bytes:
            return requests.response_too_large(len(encoded), self.limits.max_response_bytes)
        return encoded

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL with its assets served by this app, so it works without internet."""
        return graphiql_html()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        hub = self.runtime.hub if self.runtime else None
        live = self.runtime.live if self.runtime else None
        context = Context(
            request=request, response=response, settings=self.settings, hub=hub, live=live
        )
        if not isinstance(request, WebSocket):
            await context.authenticate_if_sent(
                headers.request_header(request.scope, b"authorization"),
                headers.request_header(request.scope, b"x-api-key"),
            )
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            wait = await self.limiter.hit(
                self.settings.rate_ws_connects, "ws-connect", client_address(context.request)
            )
            if wait is not None:
                raise refusal("websocket connect", wait)
            viewer = await context.authenticate(header if isinstance(header, str) else None)
            self.sessions.check_caps(
                viewer,
                per_subject=self.settings.ws_max_per_subject,
                per_organization=self.settings.ws_max_per_organization,
            )
        except DomainError as exc:
            payload = {"code": exc.code, "message": exc.message, **plain(exc.details)}
            raise ConnectionRejectionError(payload) from None
        assert context.credentials is not None and isinstance(context.request, WebSocket)
        self.sessions.add(context.request, context.credentials)
        return {"role": viewer.role.value}


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
        access.CACHE.seconds = s.auth_cache_seconds
        apikeys.CACHE.seconds = s.auth_cache_seconds
        watchers = [
            asyncio.create_task(graphql.sessions.follow(runtime.hub), name="access-changes"),
            asyncio.create_task(graphql.sessions.run(every=s.auth_cache_seconds), name="ws-tokens"),
        ]
        settle_heap()
        try:
            yield {}
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            try:
                await asyncio.wait_for(runtime.stop(), timeout=max(1.0, s.shutdown_seconds / 2))
            except TimeoutError:
                log.warning("shutdown: resources not released in time; exiting anyway")
            metrics.mark_process_dead()
            tracing.shutdown()

    return Starlette(
        # routes are tried in order and no other path is /graphql: the busiest goes first
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", probes.health(runtime)),
            Route("/readyz", probes.ready(runtime, max_lag=s.max_relay_lag_seconds)),
            Route("/exports/{job_id}/download", download_endpoint(s)),
            Route("/metrics", metrics_endpoint(s)),
            vendor_route(),
            *page_routes(s),
        ],
        middleware=[
            Middleware(RequestContext, count=s.metrics),
            *headers.middleware(s.allowed_origins),
        ],
        lifespan=lifespan,
    )
