"""Whether a token's identity still stands: its organization, operator (active, same role) or
customer exist, and its version is the subject's current one. Verdicts are cached per
process for a few seconds; `forget` drops them when a subject changes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

from tortoise.connection import get_connection

from app.accounts.models import Role, TokenSubject
from app.accounts.tokens import Credentials, credentials_for, token_for
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.errors import Unauthenticated, ValidationFailed
from app.kit.clock import utcnow
from app.kit.connections import read_retrying
from app.kit.tenancy import scoped
from app.settings import Settings

CHANNEL = "liftoff:access"
"""Pub/sub channel carrying `{org}:{subject}` of a subject whose tokens changed."""


class VerdictCache:
    """Per-process verdicts `(org, subject, role, customer) -> refusal or None`, short-lived."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entries: dict[tuple[object, ...], tuple[float, int | None, str | None]] = {}

    def get(self, key: tuple[object, ...]) -> tuple[int | None, str | None] | None:
        found = self.entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1], found[2]

    def put(self, key: tuple[object, ...], version: int | None, refusal: str | None) -> None:
        if len(self.entries) > 50_000:
            self.entries.clear()
        self.entries[key] = (time.monotonic() + self.seconds, version, refusal)

    def forget(self, organization_id: str, subject: str) -> None:
        for key in [k for k in self.entries if k[1] == subject and str(k[0]) == organization_id]:
            del self.entries[key]


CACHE = VerdictCache(seconds=10.0)


_LOOKUP = """SELECT (SELECT true FROM organization WHERE id = $1),
  (SELECT true FROM customer WHERE id = $2 AND organization_id = $1),
  (SELECT array[active::text, role] FROM operator WHERE organization_id = $1 AND email = $3),
  (SELECT version FROM token_subject WHERE organization_id = $1 AND subject = $3)"""


@read_retrying
async def _lookup(viewer: Viewer) -> tuple[int | None, str | None]:
    """(current token version, refusal) for `viewer`, read from the database in one
    statement."""
    _, rows = await get_connection("default").execute_query(
        _LOOKUP, [viewer.organization_id, viewer.customer_id, viewer.subject]
    )
    organization, customer, operator, version = tuple(rows[0])
    return standing(
        viewer,
        organization=bool(organization),
        customer=bool(customer),
        operator=operator,
        version=version,
    )


def standing(
    viewer: Viewer,
    *,
    organization: bool,
    customer: bool,
    operator: Sequence[str] | None,
    version: int | None,
) -> tuple[int | None, str | None]:
    """(current token version, refusal) for `viewer`, given whether its organization and
    customer exist, its operator's `(active, role)` and its subject's token version."""
    if not organization:
        return None, "The token's organization no longer exists."
    if viewer.role is Role.CUSTOMER:
        if not customer:
            return None, "The token's customer no longer exists."
    else:
        if operator is None or operator[0] != "true":
            return None, f"{viewer.subject} is not an active operator of this organization."
        if operator[1] != viewer.role.value:
            return None, f"{viewer.subject} is no longer {viewer.role.value}; sign in again."
    return (version or 0), None


async def verify(credentials: Credentials) -> Viewer:
    """The viewer of `credentials`, or UNAUTHENTICATED saying why it no longer stands."""
    viewer = credentials.viewer
    key = (viewer.organization_id, viewer.subject, viewer.role, viewer.customer_id)
    verdict = CACHE.get(key)
    if verdict is None:
        verdict = await _lookup(viewer)
        CACHE.put(key, *verdict)
    version, refusal = verdict
    if refusal is not None:
        raise Unauthenticated(refusal)
    if credentials.version < (version or 0):
        raise Unauthenticated("This token has been revoked; sign in again.")
    return viewer


async def fresh_token(
    settings: Settings,
    *,
    subject: str,
    organization_id: uuid.UUID,
    role: Role,
    customer_id: uuid.UUID | None = None,
    ttl: timedelta | None = None,
) -> str:
    """A token with the subject's current version, for an identity that stands today
    (UNAUTHENTICATED saying why otherwise)."""
    row = await TokenSubject.get_or_none(organization_id=organization_id, subject=subject)
    token = token_for(
        settings,
        subject=subject,
        organization_id=organization_id,
        role=role,
        customer_id=customer_id,
        ttl=ttl,
        version=row.version if row else 0,
    )
    await verify(credentials_for(settings, token))
    return token


async def revoke_tokens(viewer: Viewer, *, subject: str) -> int:
    """Revoke every token of `subject` minted so far (ADMIN); returns the new version."""
    viewer.require(Role.ADMIN)
    subject = subject.strip()
    if not subject or len(subject) > 254 or "\x00" in subject:
        raise ValidationFailed("`subject` must be 1-254 characters.", field="subject")
    await get_connection("default").execute_query(
        "INSERT INTO token_subject (id, organization_id, subject, version) "
        "VALUES ($1, $2, $3, 0) ON CONFLICT (organization_id, subject) DO NOTHING",
        [uuid.uuid4(), viewer.organization_id, subject],
    )
    row = await scoped(TokenSubject, viewer).select_for_update().get(subject=subject)
    before = {"version": row.version}
    row.version += 1
    row.revoked_at = utcnow()
    row.revoked_by = viewer.label
    await row.save(update_fields=["version", "revoked_at", "revoked_by"])
    await audit.record(
        viewer=viewer,
        action="tokens.revoke",
        target_type="token_subject",
        target_id=subject,
        before=before,
        after={"version": row.version},
    )
    CACHE.forget(str(viewer.organization_id), subject)
    return row.version
