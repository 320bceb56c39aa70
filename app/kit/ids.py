"""Identifier helpers."""

from __future__ import annotations

import uuid

from app.errors import NotFound


def parse_id(value: str | uuid.UUID, *, what: str = "object") -> uuid.UUID:
    """Parse an incoming id; a malformed one is simply not found."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No {what} with id {value!r}.", id=str(value)) from None
