"""Authentication: sign-in, bearer tokens, API keys and what makes each of them invalid."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from sqlalchemy import update

from api.errors import Conflict
from api.services.tenancy import bootstrap_tenant
from core.db.types import utcnow
from core.domain.enums import Role
from core.domain.tenancy import ApiKey, User
from tests.factories import (
    JWT_SECRET,
    PASSWORD,
    Backend,
    TenantCtx,
    create_api_key,
    expect,
    expect_error,
)


async def test_missing_credentials_is_401_with_challenge(backend: Backend) -> None:
    response = await backend.client.get("/v1/tickets")
    expect_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def _token(tenant: TenantCtx, *, secret: str = JWT_SECRET, **claims: object) -> str:
    now = int(time.time())
    base = {"sub": tenant.agent.id, "tid": tenant.id, "role": "agent", "iat": now, "exp": now + 60}
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda t: {"Authorization": "Bearer not-a-jwt"}, id="garbage-token"),
        pytest.param(lambda t: {"Authorization": "Bearer "}, id="empty-token"),
        pytest.param(lambda t: {"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
        pytest.param(
            lambda t: {"Authorization": "Bearer " + _token(t, secret="y" * 32)}, id="foreign-secret"
        ),
        pytest.param(
            lambda t: {"Authorization": "Bearer " + _token(t, exp=int(time.time()) - 10)},
            id="expired",
        ),
        pytest.param(
            lambda t: {"Authorization": "Bearer " + _token(t, sub=str(uuid.uuid4()))},
            id="unknown-user",
        ),
        pytest.param(
            lambda t: {"Authorization": "Bearer " + _token(t, sub="not-a-uuid")}, id="bad-subject"
        ),
        pytest.param(
            lambda t: {"Authorization": "Bearer " + _token(t, tid=str(uuid.uuid4()))},
            id="tenant-mismatch",
        ),
        pytest.param(lambda t: {"X-API-Key": "nope"}, id="malformed-key"),
        pytest.param(lambda t: {"X-API-Key": "rdk__secret"}, id="key-without-prefix"),
        pytest.param(
            lambda t: {"X-API-Key": t.admin_key.rsplit("_", 1)[0] + "_wrongsecret"},
            id="wrong-key-secret",
        ),
        pytest.param(lambda t: {"X-API-Key": "rdk_000000000000_whatever"}, id="unknown-key"),
    ],
)
async def test_invalid_credentials_are_401(tenant: TenantCtx, headers) -> None:
    response = await tenant.client.get("/v1/tickets", headers=headers(tenant))
    expect_error(response, 401, "unauthorized")


async def test_revoked_api_key_is_401(tenant: TenantCtx) -> None:
    created = await create_api_key(tenant, Role.AGENT)
    key = {"X-API-Key": created["key"]}
    expect(await tenant.client.get("/v1/tickets", headers=key), 200)
    revoke = await tenant.client.delete(f"/v1/api-keys/{created['id']}", headers=tenant.key_headers)
    assert revoke.status_code == 204
    expect_error(await tenant.client.get("/v1/tickets", headers=key), 401, "unauthorized")
    listed = expect(await tenant.client.get("/v1/api-keys", headers=tenant.key_headers), 200)
    row = next(k for k in listed if k["id"] == created["id"])
    assert row["revoked_at"] is not None
    assert "key" not in row
    assert "key_hash" not in row


async def test_api_key_is_shown_once_and_records_use(tenant: TenantCtx) -> None:
    created = await create_api_key(tenant, Role.VIEWER)
    assert created["key"].startswith(f"rdk_{created['prefix']}_")
    assert created["last_used_at"] is None
    expect(await tenant.client.get("/v1/users", headers={"X-API-Key": created["key"]}), 200)
    shown = expect(
        await tenant.client.get(f"/v1/api-keys/{created['id']}", headers=tenant.key_headers), 200
    )
    assert shown["last_used_at"] is not None
    assert "key" not in shown


async def test_deactivated_user_token_stops_working(tenant: TenantCtx) -> None:
    expect(await tenant.client.get("/v1/tickets", headers=tenant.agent.headers), 200)
    user = expect(
        await tenant.client.delete(f"/v1/users/{tenant.agent.id}", headers=tenant.key_headers), 200
    )
    assert user["is_active"] is False
    expect_error(await tenant.client.get("/v1/tickets", headers=tenant.agent.headers), 401)


async def test_sign_in_with_password(tenant: TenantCtx) -> None:
    email = tenant.emails[Role.AGENT]
    body = expect(
        await tenant.client.post(
            "/v1/auth/token", json={"email": email.upper(), "password": PASSWORD}
        ),
        200,
    )
    assert body["role"] == "agent"
    assert body["token_type"] == "bearer"
    assert body["tenant_id"] == tenant.id
    assert body["user_id"] == tenant.agent.id
    assert body["expires_in"] == 12 * 60 * 60
    me = {"Authorization": f"Bearer {body['access_token']}"}
    expect(await tenant.client.get("/v1/tickets", headers=me), 200)

    wrong = await tenant.client.post(
        "/v1/auth/token", json={"email": email, "password": "wrong-password"}
    )
    expect_error(wrong, 401, "unauthorized")
    unknown = await tenant.client.post(
        "/v1/auth/token", json={"email": "nobody@example.test", "password": PASSWORD}
    )
    expect_error(unknown, 401, "unauthorized")
    # Both failures say the same thing: the answer does not reveal which emails exist.
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_bootstrap_and_email_in_two_tenants(backend: Backend) -> None:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.test"
    slugs = []
    for name in (f"Acme {uuid.uuid4().hex[:6]}", f"Globex {uuid.uuid4().hex[:6]}"):
        async with backend.runtime.sessions() as session:
            boot = await bootstrap_tenant(
                session, name=name, admin_email=email, admin_password=PASSWORD
            )
        slugs.append(boot.tenant.slug)
        keyed = await backend.client.get("/v1/users", headers={"X-API-Key": boot.api_key})
        assert [u["email"] for u in expect(keyed, 200)] == [email]
    ambiguous = await backend.client.post(
        "/v1/auth/token", json={"email": email, "password": PASSWORD}
    )
    expect_error(ambiguous, 400, "tenant_required")
    chosen = await backend.client.post(
        "/v1/auth/token", json={"email": email, "password": PASSWORD, "tenant": slugs[1]}
    )
    assert expect(chosen, 200)["role"] == "admin"


async def test_bootstrap_refuses_an_existing_slug(tenant: TenantCtx) -> None:
    async with tenant.backend.runtime.sessions() as session:
        await bootstrap_tenant(
            session, name="Dup Co " + tenant.slug, admin_email="a@b.co", admin_password=PASSWORD
        )
    async with tenant.backend.runtime.sessions() as session:
        with pytest.raises(Conflict):
            await bootstrap_tenant(
                session, name="Dup Co " + tenant.slug, admin_email="c@d.co", admin_password=PASSWORD
            )


async def test_a_token_stops_working_when_it_expires(tenant: TenantCtx) -> None:
    """Verified claims are reused between requests, never past the token's expiry."""
    expires = int(time.time()) + 2
    headers = {"Authorization": "Bearer " + _token(tenant, exp=expires)}
    expect(await tenant.client.get("/v1/tickets", headers=headers), 200)
    expect(await tenant.client.get("/v1/tickets", headers=headers), 200)
    await asyncio.sleep(expires - time.time() + 0.1)
    expect_error(await tenant.client.get("/v1/tickets", headers=headers), 401, "unauthorized")


async def test_a_change_made_elsewhere_is_seen_within_the_auth_cache_time(
    tenant: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (a second worker) deactivating a user or revoking a key: this one
    keeps its resolved caller for at most `auth_cache_seconds`, then looks it up again."""
    monkeypatch.setattr(tenant.backend.runtime.settings.api, "auth_cache_seconds", 0.5)
    created = await create_api_key(tenant, Role.AGENT)
    key = {"X-API-Key": created["key"]}
    user = tenant.agent
    for headers in (key, user.headers):
        expect(await tenant.client.get("/v1/tickets", headers=headers), 200)
    async with tenant.backend.runtime.sessions() as session:
        # Written straight to the database, as another process would: no cache is cleared.
        await session.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])).values(revoked_at=utcnow())
        )
        await session.execute(
            update(User).where(User.id == uuid.UUID(user.id)).values(is_active=False)
        )
        await session.commit()
    for headers in (key, user.headers):
        expect(await tenant.client.get("/v1/tickets", headers=headers), 200)
    await asyncio.sleep(0.6)
    for headers in (key, user.headers):
        expect_error(await tenant.client.get("/v1/tickets", headers=headers), 401, "unauthorized")


async def test_without_the_auth_cache_every_request_looks_its_caller_up(
    tenant: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tenant.backend.runtime.settings.api, "auth_cache_seconds", 0.0)
    user = tenant.agent
    expect(await tenant.client.get("/v1/tickets", headers=user.headers), 200)
    async with tenant.backend.runtime.sessions() as session:
        await session.execute(
            update(User).where(User.id == uuid.UUID(user.id)).values(role=Role.VIEWER.value)
        )
        await session.commit()
    expect_error(
        await tenant.client.post("/v1/tickets", headers=user.headers, json={"subject": "x"}), 403
    )
