"""Operator sign-in by password and single-use sign-in links, with failures throttled."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError

from app.accounts import throttle
from app.accounts.credentials import OperatorPassword, SignInLink, SignInThrottle
from app.accounts.models import Operator, Organization, Role
from app.accounts.passwords import hash_password, needs_rehash, verify_password
from app.accounts.service import check_email
from app.accounts.viewer import Viewer
from app.audit.service import record
from app.customers.models import Customer
from app.errors import (
    Conflict,
    DomainError,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from app.kit.clock import utcnow
from app.kit.tenancy import scoped
from app.ops import metrics

LINK_TTL = timedelta(minutes=15)
WRONG = "Wrong email or password."


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who signed in; the transport mints their access token."""

    viewer: Viewer
    organization: Organization


@dataclass(frozen=True, slots=True)
class Outcome:
    """A sign-in attempt: `signed_in`, or the `refusal` to raise once the attempt is recorded."""

    signed_in: SignedIn | None = None
    refusal: DomainError | None = None

    def unwrap(self) -> SignedIn:
        """The sign-in, or raise the refusal (call after the transaction committed)."""
        if self.refusal is not None:
            raise self.refusal
        assert self.signed_in is not None
        return self.signed_in


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def _counter(key: str) -> SignInThrottle:
    """The locked counter row of `key` (created on first use)."""
    await get_connection("default").execute_query(
        "INSERT INTO sign_in_throttle (key, failures) VALUES ($1, 0) ON CONFLICT DO NOTHING", [key]
    )
    return await SignInThrottle.filter(key=key).select_for_update().get()


def _value(row: SignInThrottle) -> throttle.Counter:
    return throttle.Counter(row.failures, row.last_failure_at, row.locked_until)


async def _store(row: SignInThrottle, counter: throttle.Counter) -> None:
    row.failures, row.last_failure_at, row.locked_until = (
        counter.failures,
        counter.last_failure_at,
        counter.locked_until,
    )
    await row.save(update_fields=["failures", "last_failure_at", "locked_until"])


async def set_password(*, operator: Operator, password: str, by: Viewer | None = None) -> None:
    """Give an operator a (new) password; audited when an admin (`by`) sets it."""
    digest = await hash_password(password)
    updated = await OperatorPassword.filter(operator_id=operator.id).update(hash=digest)
    if not updated:
        await OperatorPassword.create(
            operator_id=operator.id,
            organization_id=operator.organization_id,  # type: ignore[attr-defined]
            hash=digest,
        )
    if by is not None:
        await record(
            viewer=by, action="operator.password_set", target_type="operator", target_id=operator.id
        )


async def create_operator(
    viewer: Viewer, *, email: str, name: str, role: Role, password: str | None
) -> Operator:
    """A new ADMIN or CSM in the viewer's organization (ADMIN only)."""
    viewer.require(Role.ADMIN)
    if role is Role.CUSTOMER:
        raise ValidationFailed("Operators are ADMIN or CSM; customers sign up.", field="role")
    address = check_email(email)
    if await scoped(Operator, viewer).filter(email=address).exists():
        raise Conflict(f"{address} is already an operator here.", field="email")
    try:
        operator = await Operator.create(
            organization_id=viewer.organization_id,
            email=address,
            name=name.strip() or address,
            role=role,
        )
    except IntegrityError:
        raise Conflict(f"{address} is already an operator here.", field="email") from None
    if password is not None:
        await set_password(operator=operator, password=password)
    await record(
        viewer=viewer,
        action="operator.created",
        target_type="operator",
        target_id=operator.id,
        after={
            "email": address,
            "name": operator.name,
            "role": role,
            "password": password is not None,
        },
    )
    return operator


Checked = tuple[SignInThrottle, throttle.Policy, str]


def _refuse_if_throttled(checks: list[Checked], now: datetime) -> DomainError | None:
    for row, policy, what in checks:
        wait = throttle.wait_before_attempt(_value(row), now=now, policy=policy)
        if wait > timedelta(0):
            locked = row.locked_until is not None and now < row.locked_until
            verb = "is locked" if locked else "is slowed down"
            metrics.RATE_LIMITED.labels(budget=f"sign-in:{what}").inc()
            return RateLimited(
                f"Too many failed sign-ins: this {what} {verb}; try again in "
                f"{throttle.in_words(wait)}.",
                retry_after_seconds=max(1, round(wait.total_seconds())),
            )
    return None


async def login(*, email: str, password: str, organization: str | None, address: str) -> Outcome:
    """Check an operator's password; failures are counted per account and per address."""
    now = utcnow()
    account = email.strip().lower()
    rows = [await _counter(f"account:{account}"), await _counter(f"address:{address}")]
    refusal = _refuse_if_throttled(
        [(rows[0], throttle.ACCOUNT, "account"), (rows[1], throttle.ADDRESS, "address")], now
    )
    if refusal is not None:
        return Outcome(refusal=refusal)
    candidates = Operator.filter(email=account).select_related("organization")
    if organization:
        candidates = candidates.filter(organization__slug=organization)
    operators = await candidates.order_by("created_at")
    hashes = {
        p.operator_id: p.hash  # type: ignore[attr-defined]
        for p in await OperatorPassword.filter(operator_id__in=[o.id for o in operators])
    }
    if len(operators) > 1:
        slugs = ", ".join(sorted(o.organization.slug for o in operators))
        return Outcome(
            refusal=ValidationFailed(
                f"This email signs in to several organizations ({slugs}); choose one.",
                field="organization",
            )
        )
    operator = operators[0] if operators else None
    stored = hashes.get(operator.id) if operator else None
    if operator is None or not await verify_password(stored, password):
        account_row, address_row = rows
        counted = throttle.after_failure(_value(account_row), now=now, policy=throttle.ACCOUNT)
        await _store(account_row, counted)
        await _store(
            address_row,
            throttle.after_failure(_value(address_row), now=now, policy=throttle.ADDRESS),
        )
        if operator is not None:
            await record(
                viewer=_operator_session(operator, operator.organization).viewer,
                action="signin.failed",
                target_type="operator",
                target_id=operator.id,
                after={"address": address, "locked": counted.locked_until is not None},
            )
        left = throttle.attempts_left(counted, now=now, policy=throttle.ACCOUNT)
        hint = (
            f" The account is now locked for {throttle.in_words(throttle.ACCOUNT.lock_for)}."
            if counted.locked_until
            else (
                f" {left} attempt{'s' if left > 1 else ''} left before a lock." if left <= 3 else ""
            )
        )
        return Outcome(refusal=Unauthenticated(WRONG + hint))
    assert stored is not None
    if needs_rehash(stored):
        await set_password(operator=operator, password=password)
    await _store(rows[0], throttle.Counter())
    done = _operator_session(operator, operator.organization)
    await record(
        viewer=done.viewer,
        action="signin.password",
        target_type="operator",
        target_id=operator.id,
        after={"address": address},
    )
    return Outcome(signed_in=done)


def _operator_session(operator: Operator, organization: Organization) -> SignedIn:
    viewer = Viewer(
        subject=operator.email, organization_id=organization.id, role=Role(operator.role)
    )
    return SignedIn(viewer=viewer, organization=organization)


async def customer_session(viewer: Viewer, *, customer_id: str) -> SignedIn:
    """A CUSTOMER sign-in for one of the organization's customers, e.g. for an embedded
    checklist (ADMIN only: the company's server asks, then hands the token to its page)."""
    from app.customers.service import get_customer

    viewer.require(Role.ADMIN)
    customer = await get_customer(viewer, customer_id)
    organization = await Organization.get(id=viewer.organization_id)
    session = Viewer(
        subject=customer.email,
        organization_id=organization.id,
        role=Role.CUSTOMER,
        customer_id=customer.id,
    )
    await record(
        viewer=viewer, action="customer_token.issued", target_type="customer", target_id=customer.id
    )
    return SignedIn(viewer=session, organization=organization)


async def create_link(
    *, organization: Organization, email: str, created_by: str, ttl: timedelta = LINK_TTL
) -> tuple[str, Role]:
    """A single-use sign-in secret for the operator, else the customer, with this email."""
    address = check_email(email)
    operator = await Operator.get_or_none(organization_id=organization.id, email=address)
    customer = (
        None
        if operator
        else await Customer.get_or_none(organization_id=organization.id, email=address)
    )
    if operator is None and customer is None:
        raise NotFound(f"Nobody with email {address} in {organization.slug}.")
    secret = secrets.token_urlsafe(32)
    await SignInLink.create(
        id=uuid.uuid4(),
        organization_id=organization.id,
        operator_id=operator.id if operator else None,
        customer_id=customer.id if customer else None,
        secret_hash=_hash(secret),
        created_by=created_by,
        expires_at=utcnow() + ttl,
    )
    return secret, (Role(operator.role) if operator else Role.CUSTOMER)


async def redeem_link(*, secret: str, address: str) -> Outcome:
    """Sign in with a link's secret, once; a used or expired link is refused and says so."""
    now = utcnow()
    row = await _counter(f"address:{address}")
    refusal = _refuse_if_throttled([(row, throttle.ADDRESS, "address")], now)
    if refusal is not None:
        return Outcome(refusal=refusal)
    link = await SignInLink.filter(secret_hash=_hash(secret.strip())).select_for_update().first()
    problem = None
    if link is None:
        problem = "This sign-in link is not valid; ask for a new one."
    elif link.used_at is not None:
        problem = "This sign-in link has already been used; ask for a new one."
    elif link.expires_at <= now:
        problem = "This sign-in link has expired (links last 15 minutes); ask for a new one."
    if problem is not None or link is None:
        await _store(row, throttle.after_failure(_value(row), now=now, policy=throttle.ADDRESS))
        return Outcome(refusal=Unauthenticated(problem or "Invalid link."))
    link.used_at, link.used_from = now, address[:64]
    await link.save(update_fields=["used_at", "used_from"])
    await link.fetch_related("organization", "operator", "customer")
    if link.operator is not None:
        done = _operator_session(link.operator, link.organization)
    else:
        customer = link.customer
        assert customer is not None
        viewer = Viewer(
            subject=customer.email,
            organization_id=link.organization.id,
            role=Role.CUSTOMER,
            customer_id=customer.id,
        )
        done = SignedIn(viewer=viewer, organization=link.organization)
    await record(
        viewer=done.viewer,
        action="signin.link",
        target_type="sign_in_link",
        target_id=link.id,
        after={"address": address, "created_by": link.created_by},
    )
    return Outcome(signed_in=done)
