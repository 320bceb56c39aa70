"""Liveness (`/healthz`) and readiness (`/readyz`) endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.liveness import pending_migrations, relay_lag_seconds
from app.runtime import Runtime

Endpoint = Callable[[Request], Awaitable[Response]]


def _broker(runtime: Runtime) -> str:
    redis = runtime.hub.redis
    return "memory" if redis is None else ("connected" if redis.is_connected else "reconnecting")


def health(runtime: Runtime) -> Endpoint:
    """Liveness: the database must answer; Redis may be reconnecting (the outbox holds
    events meanwhile). Reports the relay lag: the age of the oldest unpublished event."""

    async def endpoint(_: Request) -> Response:
        broker = _broker(runtime)
        try:
            lag = await relay_lag_seconds()
        except Exception as exc:
            body = {"status": "unavailable", "database": str(exc), "broker": broker}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "broker": broker, "relay_lag_seconds": lag})

    return endpoint


def ready(runtime: Runtime, *, max_lag: float) -> Endpoint:
    """Readiness: migrations applied, database and broker reachable, relay lag under
    `max_lag` seconds; 503 naming every reason otherwise."""

    async def endpoint(_: Request) -> Response:
        broker = _broker(runtime)
        body: dict[str, Any] = {"broker": broker}
        problems: list[str] = []
        if broker == "reconnecting":
            problems.append("the broker (Redis) is unreachable")
        try:
            body["relay_lag_seconds"] = lag = await relay_lag_seconds()
            body["pending_migrations"] = pending = await pending_migrations()
        except Exception as exc:
            problems.append(f"the database is unreachable: {exc}")
        else:
            if pending:
                problems.append(f"migrations not applied: {', '.join(pending)}")
            if lag > max_lag:
                problems.append(f"the relay is {lag:.0f}s behind (limit {max_lag:g}s)")
        body["status"] = "unavailable" if problems else "ready"
        body["problems"] = problems
        return JSONResponse(body, status_code=503 if problems else 200)

    return endpoint
