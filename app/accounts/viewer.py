"""The Viewer: who is asking, for which organization, with which role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.accounts.models import Role
from app.errors import Forbidden, ValidationFailed
from app.kit.ids import parse_id


@dataclass(frozen=True, slots=True)
class Viewer:
    """An authenticated caller."""

    subject: str
    organization_id: uuid.UUID
    role: Role
    customer_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None
    """None for a person (a JWT, bounded by its role); the scopes of a server's API key."""

    @property
    def is_operator(self) -> bool:
        return self.role in (Role.ADMIN, Role.CSM) and self.scopes is None

    @property
    def is_api_key(self) -> bool:
        return self.scopes is not None

    @property
    def label(self) -> str:
        if self.scopes is not None:
            return f"api-key:{self.subject}"
        return f"{self.role.value.lower()}:{self.subject}"

    def require_scope(self, scope: str, *roles: Role) -> None:
        """Refuse the call unless the viewer is an API key with `scope`, or a person with one
        of `roles`."""
        if self.scopes is None:
            self.require(*roles)
        elif scope not in self.scopes:
            raise Forbidden(f"This API key lacks the `{scope}` scope.")

    def require(self, *roles: Role) -> None:
        """Refuse the call unless the viewer has one of `roles`."""
        if self.role not in roles:
            names = " or ".join(r.value for r in roles)
            raise Forbidden(f"This needs the {names} role; you are {self.role.value}.")

    def customer_scope(self, customer_id: str | uuid.UUID | None) -> uuid.UUID:
        """The customer a call is about: a CUSTOMER's own, or the one an operator names."""
        if self.role is Role.CUSTOMER:
            assert self.customer_id is not None
            if (
                customer_id is not None
                and parse_id(customer_id, what="customer") != self.customer_id
            ):
                raise Forbidden("A customer may only see its own onboarding.")
            return self.customer_id
        if customer_id is None:
            raise ValidationFailed(
                "Pass `customerId`: operators act on a named customer.", field="customerId"
            )
        return parse_id(customer_id, what="customer")
