"""Organizations and operators."""

from __future__ import annotations

import re
import uuid

from tortoise.exceptions import IntegrityError

from app.accounts.models import Operator, Organization, Role
from app.errors import Conflict, NotFound, ValidationFailed

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,78}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(email: str) -> str:
    """A trimmed, lower-cased email address, or VALIDATION_FAILED."""
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254 or "\x00" in value:
        raise ValidationFailed(f"{email!r} is not an email address.", field="email")
    return value


async def create_organization(
    *, name: str, slug: str, admin_email: str, admin_name: str
) -> tuple[Organization, Operator]:
    """A new tenant with its first ADMIN."""
    if not _SLUG.match(slug):
        raise ValidationFailed(
            "The slug must be 3-80 lower-case letters, digits or dashes.", field="slug"
        )
    if not name.strip():
        raise ValidationFailed("The organization needs a name.", field="name")
    if await Organization.filter(slug=slug).exists():
        raise Conflict(f"An organization with slug {slug!r} already exists.", field="slug")
    try:
        org = await Organization.create(name=name.strip(), slug=slug)
        admin = await Operator.create(
            organization=org,
            email=check_email(admin_email),
            name=admin_name.strip() or admin_email,
            role=Role.ADMIN,
        )
    except IntegrityError as exc:
        raise Conflict(f"Could not create organization {slug!r}: {exc}") from None
    return org, admin


async def get_organization(organization_id: uuid.UUID) -> Organization:
    """The organization, or NOT_FOUND."""
    org = await Organization.get_or_none(id=organization_id)
    if org is None:
        raise NotFound("Your organization no longer exists.")
    return org
