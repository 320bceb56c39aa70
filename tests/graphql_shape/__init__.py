"""GraphQL shape tests, and the in-process GraphQL caller they share.

`InProcessGraphQL` posts to the real ASGI view (`LiftoffGraphQL`) through
`httpx.ASGITransport`: the whole HTTP → Strawberry → services → PostgreSQL path, in the
test's own event loop (Tortoise is already initialised by the `db` fixture).
"""

from __future__ import annotations

from typing import Any

import httpx

from app.asgi import LiftoffGraphQL
from app.settings import Settings

TEST_SECRET = "graphql-shape-tests-secret-key-0123456789"


def make_settings() -> Settings:
    """Settings with a fixed signing key, independent of the environment's."""
    return Settings(secret_key=TEST_SECRET)


class InProcessGraphQL:
    """POST GraphQL documents to the ASGI view and return the decoded JSON body."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = LiftoffGraphQL(settings)
        self.in_flight = 0
        self.max_in_flight = 0
        """The most requests the view was serving at the same moment."""

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._asgi), base_url="http://liftoff.test"
        )

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> dict[str, Any]:
        """The response body; the HTTP status must be 200 (GraphQL errors are in the body)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables or {}}
        if client is None:
            async with self.client() as own:
                response = await own.post("/", json=body, headers=headers)
        else:
            response = await client.post("/", json=body, headers=headers)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data
