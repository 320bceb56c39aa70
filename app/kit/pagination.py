"""Relay-style cursor pagination over a stable (created_at, id) order."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.errors import ValidationFailed

MAX_PAGE = 100
DEFAULT_PAGE = 20
M = TypeVar("M", bound=Model)


class Cursors(Generic[M]):
    """The cursors around a page's `items`."""

    items: list[M]

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.items[-1]) if self.items else None

    @property
    def start_cursor(self) -> str | None:
        return encode_cursor(self.items[0]) if self.items else None


@dataclass(frozen=True)
class Page(Cursors[M]):
    """One page of rows with the cursors around it."""

    items: list[M]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def encode_cursor(row: Model) -> str:
    """An opaque cursor for a row ordered by (created_at, id)."""
    return cursor_of(row.created_at, row.pk)  # type: ignore[attr-defined]


def cursor_of(created_at: datetime, pk: uuid.UUID | int) -> str:
    """The cursor of the row at (created_at, pk) in (created_at, id) order."""
    raw = json.dumps([created_at.isoformat(), str(pk)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID | int]:
    """Inverse of encode_cursor (uuid or integer keys); a bad cursor is a validation failure."""
    try:
        created, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        key = int(pk) if isinstance(pk, str) and pk.isdigit() else uuid.UUID(pk)
        return datetime.fromisoformat(created), key
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("The `after` cursor is not one this API issued.") from exc


def clamp_first(first: int | None) -> int:
    """Page size, defaulted and capped at MAX_PAGE."""
    if first is None:
        return DEFAULT_PAGE
    if first < 0:
        raise ValidationFailed("`first` must not be negative.", field="first")
    return min(first, MAX_PAGE)


async def paginate(query: QuerySet[M], *, first: int | None, after: str | None) -> Page[M]:
    """Fetch one page of `query` in (created_at, id) order."""
    size = clamp_first(first)
    total = await query.count()
    if after:
        created, pk = decode_cursor(after)
        query = query.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=pk))
    rows = await query.order_by("created_at", "id").limit(size + 1)
    return Page(
        items=list(rows[:size]),
        has_next_page=len(rows) > size,
        has_previous_page=after is not None,
        total_count=total,
    )
