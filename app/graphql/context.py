"""The typed per-request (or per-websocket) context."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.accounts import access, apikeys
from app.accounts.models import Role
from app.accounts.tokens import Credentials, bearer, credentials_for
from app.accounts.viewer import Viewer
from app.analytics.live import LiveMetrics
from app.analytics.service import Keep
from app.errors import DomainError, Forbidden, Unauthenticated, Unavailable
from app.events.hub import Hub
from app.graphql.loaders import Loaders
from app.kit.connections import connection_lost
from app.settings import Settings

NO_TOKEN = "Send `Authorization: Bearer <token>` (mint one with `liftoff token`)."
KEY_ONLY_INGESTS = (
    "An API key can only call `ingestEvents`; everything else needs an operator's or a "
    "customer's bearer token."
)


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
        self._refusal: DomainError | None = None
        self.credentials: Credentials | None = None

    async def authenticate(self, header: str | None) -> Viewer:
        """Read the bearer token of `header` and check it still stands; the Viewer."""
        return await self._verify(bearer(header))

    async def _verify(self, token: str | None) -> Viewer:
        """The Viewer of a bearer token that still stands (`authenticate`)."""
        if token is None:
            raise Unauthenticated(NO_TOKEN)
        credentials = credentials_for(self.settings, token)
        self._viewer = await access.verify(credentials)
        self.credentials = credentials
        return self._viewer

    async def authenticate_if_sent(self, header: str | None, api_key: str | None = None) -> None:
        """Authenticate when a header was sent (a JWT, or an API key as `Bearer lk_…` or in
        `X-Api-Key`); a refusal waits for the first field that needs a viewer (so fields
        that need none, such as signing in, still answer)."""
        if header is None and api_key is None:
            return
        try:
            if api_key is not None:
                self._viewer = await apikeys.authenticate(api_key)
                return
            token = bearer(header)  # read once, for either kind of credential
            if token is not None and apikeys.is_api_key(token):
                self._viewer = await apikeys.authenticate(token)
            else:
                await self._verify(token)
        except DomainError as exc:
            self._refusal = exc
        except Exception as exc:
            if not connection_lost(exc):
                raise
            self._refusal = Unavailable("The database is unreachable; retry in a moment.")

    @property
    def role(self) -> Role | None:
        """The authenticated caller's role, or None (never raises)."""
        return self._viewer.role if self._viewer is not None else None

    @property
    def viewer(self) -> Viewer:
        """The authenticated person; UNAUTHENTICATED when there is none, FORBIDDEN for an
        API key (keys reach only the fields that ask for `caller`)."""
        caller = self.caller
        if caller.is_api_key:
            raise Forbidden(KEY_ONLY_INGESTS)
        return caller

    @property
    def caller(self) -> Viewer:
        """The authenticated person or API key; UNAUTHENTICATED when there is none."""
        if self._viewer is None:
            if self._refusal is not None:
                raise type(self._refusal)(self._refusal.message, **self._refusal.details)
            raise Unauthenticated(NO_TOKEN)
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

    @property
    def keep_reports(self) -> Keep | None:
        """This process's analytics report cache, when it runs one."""
        return self._live.report if self._live is not None else None

    @cached_property
    def loaders(self) -> Loaders:
        """DataLoaders scoped to the viewer's organization, fresh for each request."""
        return Loaders(self.viewer)
