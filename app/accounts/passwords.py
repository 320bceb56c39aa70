"""Password hashing with argon2id (argon2-cffi's recommended parameters)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import ValidationFailed

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("liftoff-no-such-operator")


def check_policy(password: str) -> str:
    """The password if it is acceptable, or VALIDATION_FAILED saying why."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(
            f"Use a password of at least {MIN_LENGTH} characters.", field="password"
        )
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(
            f"Use a password of at most {MAX_LENGTH} characters.", field="password"
        )
    return password


async def hash_password(password: str) -> str:
    """An argon2id hash of a password that passed the policy (computed off the event loop)."""
    return await asyncio.to_thread(_hasher.hash, check_policy(password))


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches; without a stored hash a dummy is checked (same timing)."""

    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with older parameters and should be replaced."""
    return _hasher.check_needs_rehash(stored)
