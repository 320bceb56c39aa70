"""Open websockets and the tokens they were opened with: each is closed with 4403 when its
token expires, is revoked, or its subject no longer stands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from starlette.websockets import WebSocket

from app.accounts import access, apikeys, ratelimits
from app.accounts.tokens import Credentials
from app.accounts.viewer import Viewer
from app.errors import DomainError, RateLimited
from app.events.hub import Hub
from app.ops import metrics

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403


@dataclass
class _Session:
    websocket: WebSocket
    credentials: Credentials
    expiry: asyncio.TimerHandle


class Sessions:
    """The authenticated websockets of this process, by subject."""

    def __init__(self) -> None:
        self.open: dict[int, _Session] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def add(self, websocket: WebSocket, credentials: Credentials) -> None:
        """Watch `websocket`: close it when `credentials` expire."""
        self.discard(websocket.scope)
        delay = max(0.0, credentials.expires_at - time.time())
        expiry = asyncio.get_running_loop().call_later(
            delay, self._close_soon, websocket, "The token has expired; sign in again."
        )
        self.open[id(websocket.scope)] = _Session(websocket, credentials, expiry)

    def check_caps(self, viewer: Viewer, *, per_subject: int, per_organization: int) -> None:
        """RATE_LIMITED when `viewer`'s subject or organization holds its share of this
        process's websockets already."""
        mine = [s.credentials.viewer for s in self.open.values()]
        same_org = [v for v in mine if v.organization_id == viewer.organization_id]
        if len(same_org) >= per_organization:
            metrics.RATE_LIMITED.labels(budget="websockets:organization").inc()
            raise RateLimited(
                f"Your organization has {len(same_org)} websockets open here; close some first.",
                retryAfter=5,
            )
        if sum(1 for v in same_org if v.subject == viewer.subject) >= per_subject:
            metrics.RATE_LIMITED.labels(budget="websockets:subject").inc()
            raise RateLimited(
                f"You have {per_subject} websockets open already; reuse one (each carries "
                "several subscriptions).",
                retryAfter=5,
            )

    def discard(self, scope: object) -> None:
        """Forget the websocket of `scope` (it closed)."""
        session = self.open.pop(id(scope), None)
        if session is not None:
            session.expiry.cancel()

    async def recheck(self, organization_id: str | None = None, subject: str | None = None) -> int:
        """Check the tokens of open websockets (of one subject, or all); close what no longer
        stands. Returns how many were closed."""
        closed = 0
        for session in list(self.open.values()):
            viewer = session.credentials.viewer
            if subject is not None and (
                viewer.subject != subject or str(viewer.organization_id) != organization_id
            ):
                continue
            try:
                await access.verify(session.credentials)
            except DomainError as exc:
                await self.close(session.websocket, exc.message)
                closed += 1
        return closed

    async def run(self, *, every: float) -> None:
        """Recheck every open websocket every `every` seconds, until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.recheck()
            except Exception:
                log.exception("rechecking websocket tokens failed")

    async def close(self, websocket: WebSocket, reason: str) -> None:
        self.discard(websocket.scope)
        with contextlib.suppress(Exception):
            await websocket.close(code=CLOSE_FORBIDDEN, reason=reason[:120])

    def _close_soon(self, websocket: WebSocket, reason: str) -> None:
        task = asyncio.ensure_future(self.close(websocket, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def follow(self, hub: Hub) -> None:
        """Forget cached verdicts and recheck sockets of each subject announced on
        `access.CHANNEL` (by any process), until cancelled."""
        async with hub.broadcast.subscribe(access.CHANNEL) as subscriber:
            while True:
                event = await subscriber.get()
                organization_id, _, subject = str(event.message).partition(":")
                access.CACHE.forget(organization_id, subject)
                apikeys.CACHE.forget(subject)
                ratelimits.CACHE.forget(organization_id)
                try:
                    await self.recheck(organization_id, subject)
                except Exception:
                    log.exception("rechecking websockets of %s failed", subject)
