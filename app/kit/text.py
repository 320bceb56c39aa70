"""Checks of incoming text and times, named after the field they came in."""

from __future__ import annotations

from datetime import datetime

from app.errors import ValidationFailed


def text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """`value` trimmed; VALIDATION_FAILED when empty (if required), too long or holding NUL."""
    cleaned = value.strip()
    if "\x00" in cleaned:
        raise ValidationFailed(f"`{field}` may not contain NUL characters.", field=field)
    if required and not cleaned:
        raise ValidationFailed(f"`{field}` may not be empty.", field=field)
    if len(cleaned) > max_length:
        raise ValidationFailed(
            f"`{field}` has {len(cleaned)} characters; at most {max_length} are accepted.",
            field=field,
        )
    return cleaned


def optional_text(value: str | None, *, field: str, max_length: int) -> str | None:
    """Like `text`, for a value that may be absent (an empty one counts as absent)."""
    if value is None:
        return None
    return text(value, field=field, max_length=max_length, required=False) or None


def aware(value: datetime, *, field: str) -> datetime:
    """`value` if it carries a UTC offset; VALIDATION_FAILED for a naive time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"`{field}` needs a UTC offset, e.g. 2024-05-01T09:30:00Z.", field=field
        )
    return value
