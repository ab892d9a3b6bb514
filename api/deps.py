"""Request-scoped dependencies, exposed as `Annotated` aliases for the routes."""

from __future__ import annotations

import hashlib
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api import principal_cache
from api.errors import Forbidden, RateLimited, Unauthorized
from api.services.delivery import QUEUED_FLAG
from core.db import raw_read
from core.db.types import utcnow
from core.domain.enums import Role
from core.domain.feedback import FEEDBACK_TASKS
from core.domain.tenancy import ApiKey, User
from core.events.store import EventContext, EventRecorder
from core.runtime import Runtime
from core.security import api_secret_matches, decode_token, split_api_key
from core.settings import Settings
from models.service import ModelService

ROLE_RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.ADMIN: 2}


# Every dependency is `async def`, even when it does not await: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per dependency per request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# get_settings, get_session and get_principal read the runtime from the request, not
# through RuntimeDep: FastAPI resolves every dependency edge again on every request.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_models(runtime: RuntimeDep) -> ModelService:
    return runtime.models


ModelsDep = Annotated[ModelService, Depends(get_models)]


_READ_METHODS = frozenset({"GET", "HEAD"})
_autocommit_engines: weakref.WeakKeyDictionary[Any, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The engine's twin whose connections run in autocommit (made once per engine)."""
    found = _autocommit_engines.get(engine.sync_engine)
    if found is None:
        found = engine.execution_options(isolation_level="AUTOCOMMIT")
        _autocommit_engines[engine.sync_engine] = found
    return found


def read_session(runtime: Runtime) -> AsyncSession:
    """A session for statements that only read: in autocommit on PostgreSQL (then list pages
    may run on the driver itself, core/db/raw_read), an ordinary one elsewhere."""
    if runtime.engine.dialect.name != "postgresql":
        return runtime.sessions()
    session = runtime.sessions(bind=autocommit(runtime.engine))
    session.info[raw_read.AUTOCOMMIT] = True
    return session


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime: Runtime = request.app.state.runtime
    # A read-only request on PostgreSQL runs its statements in autocommit: under READ
    # COMMITTED each statement sees the same data either way, and it saves the BEGIN and
    # ROLLBACK round trips around every list and search. (SQLite keeps its transaction:
    # its BEGIN is issued by the engine's own hook.)
    session = read_session(runtime) if request.method in _READ_METHODS else runtime.sessions()
    async with session:
        yield session
        if session.info.pop("outbox_written", False):
            runtime.relay.notify()
        reply_queued = session.info.pop(QUEUED_FLAG, False)
        corrected = session.info.pop(FEEDBACK_TASKS, None)
    if reply_queued:
        runtime.reply_queued()
    # After the session is closed: on SQLite it may still hold the write lock.
    if corrected and runtime.settings.training.retrain_after_corrections:
        from training.retrain import after_feedback

        await after_feedback(runtime.settings, runtime.sessions, corrected)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    role: Role
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @property
    def actor_type(self) -> str:
        return "user" if self.user_id else "api_key"

    @property
    def actor_id(self) -> str:
        return str(self.user_id or self.api_key_id)

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


_api_keys = ApiKey.__table__.c
_users = User.__table__.c
# Built once: constructing a statement per request cost as much as running it.
_KEY_LOOKUP = select(
    _api_keys.id,
    _api_keys.tenant_id,
    _api_keys.role,
    _api_keys.key_hash,
    _api_keys.revoked_at,
    _api_keys.last_used_at,
).where(_api_keys.prefix == bindparam("prefix"))
# Three columns, not the ORM object: loading a User also loads its teams and their members
# (selectin relationships), extra queries on every request.
_USER_LOOKUP = select(_users.tenant_id, _users.role, _users.is_active).where(
    _users.id == bindparam("user_id")
)


async def _from_api_key(session: AsyncSession, value: str) -> Principal:
    parts = split_api_key(value)
    if parts is None:
        raise Unauthorized("malformed API key")
    prefix, secret = parts
    key = (await session.execute(_KEY_LOOKUP, {"prefix": prefix})).one_or_none()
    if key is None or key.revoked_at is not None or not api_secret_matches(key.key_hash, secret):
        raise Unauthorized("invalid or revoked API key")
    now = utcnow()
    # Writing on every request would make each read a write; a minute of precision is enough.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        await session.commit()
    return Principal(tenant_id=key.tenant_id, role=Role(key.role), api_key_id=key.id)


# Verified claims by token: a signature check and JSON parse on every request cost more than
# the user lookup. Keyed by the secret too, so a token is never trusted by another secret;
# an entry is used only until the token's own expiry.
_CLAIMS_CACHE_SIZE = 4096
_claims_cache: dict[tuple[str, str, str], dict[str, Any]] = {}


def _claims(settings: Settings, token: str) -> dict[str, Any] | None:
    key = (token, settings.auth.jwt_secret.get_secret_value(), settings.auth.jwt_algorithm)
    claims = _claims_cache.get(key)
    if claims is not None and time.time() < claims["exp"]:
        return claims
    claims = decode_token(settings, token)
    if claims is not None:
        if len(_claims_cache) >= _CLAIMS_CACHE_SIZE:
            _claims_cache.clear()
        _claims_cache[key] = claims
    return claims


async def _from_token(
    session: AsyncSession, settings: Settings, token: str
) -> tuple[Principal, float]:
    """The token's principal and the token's expiry (epoch seconds)."""
    claims = _claims(settings, token)
    if claims is None:
        raise Unauthorized("invalid or expired token")
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError as exc:
        raise Unauthorized("invalid token subject") from exc
    user = (await session.execute(_USER_LOOKUP, {"user_id": user_id})).one_or_none()
    if user is None or not user.is_active or str(user.tenant_id) != claims["tid"]:
        raise Unauthorized("the token's user no longer exists or is deactivated")
    principal = Principal(tenant_id=user.tenant_id, role=Role(user.role), user_id=user_id)
    return principal, float(claims["exp"])


async def get_principal(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    runtime: Runtime = request.app.state.runtime
    ttl_s = runtime.settings.api.auth_cache_seconds
    if x_api_key:
        credential = "key " + x_api_key
        principal = principal_cache.PRINCIPALS.get(runtime, credential)
        if principal is None:
            principal = await _from_api_key(session, x_api_key)
            principal_cache.PRINCIPALS.put(runtime, credential, principal, ttl_s)
    elif authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
        credential = "bearer " + token
        principal = principal_cache.PRINCIPALS.get(runtime, credential)
        if principal is None:
            principal, expires = await _from_token(session, runtime.settings, token)
            ttl_s = min(ttl_s, expires - time.time())
            principal_cache.PRINCIPALS.put(runtime, credential, principal, ttl_s)
    else:
        raise Unauthorized(
            "send a bearer token (Authorization: Bearer ...) or an API key (X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    allowed, reset = await runtime.rate_limiter.check(principal.actor_id)
    if not allowed:
        raise RateLimited(
            f"rate limit of {runtime.rate_limiter.per_minute} requests per minute exceeded",
            headers={"Retry-After": str(reset)},
        )
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.at_least(role):
            raise Forbidden(f"this action needs the {role.value} role")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Agent = Annotated[Principal, Depends(require(Role.AGENT))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def get_recorder(request: Request, session: SessionDep, principal: Viewer) -> EventRecorder:
    correlation = request.headers.get("x-correlation-id") or request.headers.get("x-request-id")
    return EventRecorder(
        session,
        EventContext(
            correlation_id=correlation,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
        ),
    )


RecorderDep = Annotated[EventRecorder, Depends(get_recorder)]


def credential_scope(request: Request) -> str:
    """A stable hash of whatever credential the request carries."""
    raw = request.headers.get("x-api-key") or request.headers.get("authorization") or ""
    return hashlib.sha256(raw.encode()).hexdigest()
