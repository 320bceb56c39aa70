"""Per-request values carried through contextvars (set by the transport, read anywhere)."""

from __future__ import annotations

import contextvars

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "liftoff_request_id", default=None
)
"""The id of the HTTP request or websocket being served (from `X-Request-ID` or made up)."""
