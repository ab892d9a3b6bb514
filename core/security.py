"""Password hashing (Argon2id), bearer tokens (JWT) and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.db.types import utcnow
from core.settings import Settings

_hasher = PasswordHasher()
API_KEY_PREFIX = "rdk"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying against a real hash when the user does not exist keeps login time flat, so
# response timing does not tell which emails have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def burn_password_check(password: str) -> None:
    verify_password(_DUMMY_HASH, password)


def issue_token(settings: Settings, *, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> str:
    now = utcnow()
    claims = {
        "sub": str(user_id),
        "tid": str(tenant_id),
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=settings.auth.token_ttl_minutes)).timestamp()),
    }
    return jwt.encode(
        claims, settings.auth.jwt_secret.get_secret_value(), algorithm=settings.auth.jwt_algorithm
    )


def decode_token(settings: Settings, token: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.auth.jwt_secret.get_secret_value(),
            algorithms=[settings.auth.jwt_algorithm],
            options={"require": ["exp", "sub", "tid"]},
        )
    except jwt.PyJWTError:
        return None
    return claims


@dataclass(frozen=True)
class NewApiKey:
    prefix: str
    secret: str
    key_hash: str

    @property
    def plaintext(self) -> str:
        return f"{API_KEY_PREFIX}_{self.prefix}_{self.secret}"


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(prefix=prefix, secret=secret, key_hash=hash_api_secret(secret))


def hash_api_secret(secret: str) -> str:
    # API secrets carry 256 bits of entropy, so a fast hash is safe and keeps every request
    # cheap; passwords, which people choose, get Argon2 instead.
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(value: str) -> tuple[str, str] | None:
    parts = value.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def api_secret_matches(key_hash: str, secret: str) -> bool:
    return hmac.compare_digest(key_hash, hash_api_secret(secret))
