"""Server-to-server API keys: created by an admin (the secret shown once, only its SHA-256
kept), checked on each call through a short per-process cache, revocable.

A key acts only for its own organization and only within its scopes. Its last use is
written at most once a minute per key and process, outside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from tortoise.connection import get_connection

from app.accounts.models import ApiKey, Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.errors import NotFound, Unauthenticated, ValidationFailed
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.tenancy import scoped
from app.kit.text import text

SECRET_PREFIX = "lk_"
"""Every secret starts with this, so a bearer value is told from a JWT at a glance."""
PREFIX_LENGTH = 11  # "lk_" and 8 characters: shown in lists, enough to tell keys apart
INGEST = "events:ingest"
SCOPES = frozenset({INGEST})
TOUCH_SECONDS = 60.0
UNKNOWN = "Unknown or revoked API key; create one with `createApiKey` or `liftoff api-key create`."


def is_api_key(value: str | None) -> bool:
    """Whether a credential is an API key secret (and not a JWT)."""
    return bool(value) and str(value).startswith(SECRET_PREFIX)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What a valid key stands for."""

    id: uuid.UUID
    organization_id: uuid.UUID
    prefix: str
    scopes: frozenset[str]

    def viewer(self) -> Viewer:
        return Viewer(
            subject=self.prefix,
            organization_id=self.organization_id,
            role=Role.ADMIN,
            scopes=self.scopes,
        )


class KeyCache:
    """Per-process verdicts `hash -> key or None (unknown/revoked)`, short-lived, plus the
    time each key's use was last written."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entries: dict[str, tuple[float, KeyRecord | None]] = {}
        self.touched: dict[uuid.UUID, float] = {}

    def get(self, key_hash: str) -> tuple[KeyRecord | None] | None:
        found = self.entries.get(key_hash)
        if found is None or found[0] < time.monotonic():
            return None
        return (found[1],)

    def put(self, key_hash: str, record: KeyRecord | None) -> None:
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key_hash] = (time.monotonic() + self.seconds, record)

    def forget(self, prefix: str) -> None:
        """Drop the verdict of the key with this prefix (it was revoked)."""
        for key_hash, (_, record) in list(self.entries.items()):
            if record is not None and record.prefix == prefix:
                del self.entries[key_hash]

    def due(self, key_id: uuid.UUID) -> bool:
        """Whether this key's use should be written now (and note that it is)."""
        now = time.monotonic()
        if now - self.touched.get(key_id, -TOUCH_SECONDS) < TOUCH_SECONDS:
            return False
        if len(self.touched) > 10_000:
            self.touched.clear()
        self.touched[key_id] = now
        return True


CACHE = KeyCache(seconds=10.0)


async def _lookup(key_hash: str) -> KeyRecord | None:
    row = await ApiKey.get_or_none(key_hash=key_hash, revoked_at=None)
    if row is None:
        return None
    return KeyRecord(
        id=row.id,
        organization_id=row.organization_id,  # type: ignore[attr-defined]
        prefix=row.prefix,
        scopes=frozenset(row.scopes or ()),
    )


async def authenticate(secret: str) -> Viewer:
    """The viewer of an API key secret, or UNAUTHENTICATED; notes its use (cheaply)."""
    key_hash = digest(secret.strip())
    cached = CACHE.get(key_hash)
    record = cached[0] if cached is not None else await _lookup(key_hash)
    if cached is None:
        CACHE.put(key_hash, record)
    if record is None:
        raise Unauthenticated(UNKNOWN)
    if CACHE.due(record.id):
        await touch(record.id, utcnow())
    return record.viewer()


async def touch(key_id: uuid.UUID, now: datetime) -> None:
    """Write a key's last use unless another process did within the minute."""
    await get_connection("default").execute_query(
        "UPDATE api_key SET last_used_at = $2 WHERE id = $1 AND "
        "(last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '60 seconds')",
        [key_id, now],
    )


def _scopes(scopes: list[str] | None) -> list[str]:
    chosen = sorted(set(scopes)) if scopes else [INGEST]
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise ValidationFailed(
            f"Unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}.",
            field="scopes",
        )
    return chosen


async def create_key(
    viewer: Viewer, *, name: str, scopes: list[str] | None = None
) -> tuple[ApiKey, str]:
    """A new key of the viewer's organization (ADMIN) and its secret, which is never shown
    again."""
    viewer.require(Role.ADMIN)
    label = text(name, field="name", max_length=200)
    chosen = _scopes(scopes)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = await ApiKey.create(
        organization_id=viewer.organization_id,
        name=label,
        prefix=secret[:PREFIX_LENGTH],
        key_hash=digest(secret),
        scopes=chosen,
        created_by=viewer.subject,
    )
    await audit.record(
        viewer=viewer,
        action="api_key.created",
        target_type="api_key",
        target_id=row.id,
        after={"name": label, "prefix": row.prefix, "scopes": chosen},
    )
    return row, secret


async def revoke_key(viewer: Viewer, key_id: str | uuid.UUID) -> ApiKey:
    """Revoke one of the organization's keys (ADMIN); revoking twice changes nothing."""
    viewer.require(Role.ADMIN)
    kid = parse_id(key_id, what="API key")
    row = await scoped(ApiKey, viewer).select_for_update().get_or_none(id=kid)
    if row is None:
        raise NotFound(f"No API key with id {kid}.", apiKey=str(kid))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await row.save(update_fields=["revoked_at"])
        await audit.record(
            viewer=viewer,
            action="api_key.revoked",
            target_type="api_key",
            target_id=row.id,
            before={"revokedAt": None},
            after={"revokedAt": row.revoked_at.isoformat(), "prefix": row.prefix},
        )
    CACHE.forget(row.prefix)
    return row


async def list_keys(viewer: Viewer) -> list[ApiKey]:
    """The organization's keys, newest first (ADMIN)."""
    viewer.require(Role.ADMIN)
    return await scoped(ApiKey, viewer).order_by("-created_at", "id")
