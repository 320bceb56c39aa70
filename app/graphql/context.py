"""The typed per-request (or per-websocket) context."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.accounts.tokens import bearer, read_token
from app.accounts.viewer import Viewer
from app.analytics.live import LiveMetrics
from app.errors import Unauthenticated
from app.events.hub import Hub
from app.graphql.loaders import Loaders
from app.settings import Settings


class Context:
    """Who is asking, and the DataLoaders of this request."""

    def __init__(
        self,
        *,
        request: Request | WebSocket,
        response: Response | WebSocket | None,
        settings: Settings,
        hub: Hub | None = None,
        live: LiveMetrics | None = None,
    ) -> None:
        self._hub = hub
        self._live = live
        self.request = request
        self.response = response
        self.settings = settings
        self.connection_params: dict[str, Any] | None = None
        self._viewer: Viewer | None = None

    def authenticate(self, header: str | None) -> Viewer:
        """Read the bearer token of `header` into the Viewer."""
        token = bearer(header)
        if token is None:
            raise Unauthenticated(
                "Send `Authorization: Bearer <token>` (mint one with `liftoff token`)."
            )
        self._viewer = read_token(
            token,
            secret=self.settings.resolved_secret_key(),
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        return self._viewer

    @property
    def viewer(self) -> Viewer:
        """The authenticated caller; UNAUTHENTICATED when there is none."""
        if self._viewer is None:
            if self.connection_params is not None:
                header = self.connection_params.get("Authorization") or self.connection_params.get(
                    "authorization"
                )
                return self.authenticate(header if isinstance(header, str) else None)
            return self.authenticate(self.request.headers.get("authorization"))
        return self._viewer

    @property
    def hub(self) -> Hub:
        """The broadcast hub of this process (subscriptions only)."""
        if self._hub is None:
            raise RuntimeError("the event hub is not running in this process")
        return self._hub

    @property
    def live(self) -> LiveMetrics:
        """The shared dashboard feeds of this process (subscriptions only)."""
        if self._live is None:
            raise RuntimeError("live metrics are not running in this process")
        return self._live

    @cached_property
    def loaders(self) -> Loaders:
        """DataLoaders scoped to the viewer's organization, fresh for each request."""
        return Loaders(self.viewer)
