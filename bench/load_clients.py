"""The HTTP clients `bench.workflow`'s load generator can send its GraphQL POSTs with
(`--client`).

aiohttp (the default) parses answers in C and costs about 0.2 ms of CPU per `updateTask`
request on the bench machine, a tenth of httpx's 1.7-1.9 ms (its HTTP/1.1 layers, httpcore
and h11, are pure Python), which held the load generator at a full core and so bounded both
apps. httpx stays selectable to reproduce figures measured with it. Either client sends the
same bytes to every app (only the `host` header names the app's port) and judges an answer
alike: None when it is HTTP 200 without `"errors"` in the body, else a one-line account of
what went wrong.
"""

from __future__ import annotations

from typing import Protocol

from bench.tenant import answer_error, post_graphql

CLIENTS = ("aiohttp", "httpx")
TIMEOUT = 60.0


class LoadClient(Protocol):
    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """POST `body` to /graphql: None when answered without errors, else what went wrong."""

    async def aclose(self) -> None: ...


class HttpxClient:
    """httpx `AsyncClient`, keep-alive pool of `concurrency` connections (pure-Python h11)."""

    def __init__(self, url: str, concurrency: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=TIMEOUT)

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        return await post_graphql(self.client, body, headers)

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpClient:
    """aiohttp `ClientSession` (C HTTP parser), keep-alive `TCPConnector` of `concurrency`
    connections."""

    def __init__(self, url: str, concurrency: int) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.url = url.rstrip("/") + "/graphql"
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        try:
            async with self.session.post(self.url, data=body, headers=headers) as response:
                content = await response.read()
                return answer_error(response.status, content)
        except (self.aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def aclose(self) -> None:
        await self.session.close()


def make_client(kind: str, url: str, concurrency: int) -> LoadClient:
    if kind == "httpx":
        return HttpxClient(url, concurrency)
    if kind == "aiohttp":
        return AiohttpClient(url, concurrency)
    raise ValueError(f"unknown client {kind!r}; one of {', '.join(CLIENTS)}")
