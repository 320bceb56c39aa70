"""JWT bearer tokens: HS256 pinned, `exp`, `iss` and `aud` checked."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

import jwt

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.errors import Unauthenticated
from app.kit.clock import utcnow
from app.settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a correctly signed token says: who, which token version, until when (epoch s)."""

    viewer: Viewer
    version: int
    expires_at: int


def mint_token(
    *,
    secret: str,
    issuer: str,
    audience: str,
    subject: str,
    organization_id: uuid.UUID,
    role: Role,
    customer_id: uuid.UUID | None = None,
    ttl: timedelta = timedelta(days=30),
    version: int = 0,
) -> str:
    """A signed token for the given identity."""
    if role is Role.CUSTOMER and customer_id is None:
        raise ValueError("a CUSTOMER token needs a customer id")
    now = utcnow()
    claims: dict[str, object] = {
        "sub": subject,
        "org": str(organization_id),
        "role": role.value,
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if customer_id is not None:
        claims["cid"] = str(customer_id)
    if version:
        claims["ver"] = version
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def token_for(
    settings: Settings,
    *,
    subject: str,
    organization_id: uuid.UUID,
    role: Role,
    customer_id: uuid.UUID | None = None,
    ttl: timedelta | None = None,
    version: int = 0,
) -> str:
    """A token signed and addressed as `settings` says; lifetime LIFTOFF_TOKEN_TTL_HOURS."""
    return mint_token(
        secret=settings.resolved_secret_key(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        subject=subject,
        organization_id=organization_id,
        role=role,
        customer_id=customer_id,
        ttl=ttl or timedelta(hours=settings.token_ttl_hours),
        version=version,
    )


def read_token(token: str, *, secret: str, issuer: str, audience: str) -> Viewer:
    """The Viewer a token stands for, or UNAUTHENTICATED with the reason."""
    return read_credentials(token, secret=secret, issuer=issuer, audience=audience).viewer


_READ: OrderedDict[tuple[str, str, str, str], Credentials] = OrderedDict()
_READ_SIZE = 4096


def credentials_for(settings: Settings, token: str) -> Credentials:
    """`read_credentials` with the key, issuer and audience of `settings`.

    A token this process already read is not decoded and verified again: the same text with
    the same key says the same thing, until it expires (checked every time). Whether its
    subject still stands is the caller's business, as for a fresh read.
    """
    key = (token, settings.resolved_secret_key(), settings.jwt_issuer, settings.jwt_audience)
    known = _READ.get(key)
    if known is not None:
        if known.expires_at > time.time():
            return known
        del _READ[key]
    credentials = read_credentials(token, secret=key[1], issuer=key[2], audience=key[3])
    _READ[key] = credentials
    if len(_READ) > _READ_SIZE:
        _READ.popitem(last=False)
    return credentials


def read_credentials(token: str, *, secret: str, issuer: str, audience: str) -> Credentials:
    """The identity, version and expiry a token carries, or UNAUTHENTICATED with the reason."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iss", "aud", "sub", "org", "role"]},
        )
        role = Role(claims["role"])
        org = uuid.UUID(claims["org"])
        cid = uuid.UUID(claims["cid"]) if claims.get("cid") else None
        version = int(claims.get("ver", 0))
        expires_at = int(claims["exp"])
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired; sign in again.") from None
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated(f"The bearer token is not valid: {exc}.") from None
    if role is Role.CUSTOMER and cid is None:
        raise Unauthenticated("A CUSTOMER token must carry a `cid` claim.")
    viewer = Viewer(subject=str(claims["sub"]), organization_id=org, role=role, customer_id=cid)
    return Credentials(viewer=viewer, version=version, expires_at=expires_at)


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header value."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use `Authorization: Bearer <token>`.")
    return token.strip()
