"""The role matrix: viewers read, agents work tickets and conversations, admins configure."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from core.domain.enums import Role
from tests.factories import TenantCtx, create_api_key, create_ticket, expect, expect_error, inbound

Call = Callable[[TenantCtx, dict[str, str]], Awaitable[httpx.Response]]


def _new_email() -> str:
    return f"u-{uuid.uuid4().hex[:8]}@example.test"


async def _conversation(t: TenantCtx) -> str:
    return str((await inbound(t))["conversation_id"])


# (name, call, minimum role). Reads need viewer, work needs agent, configuration needs admin.
ENDPOINTS: list[tuple[str, Call, Role]] = [
    ("list tickets", lambda t, h: t.client.get("/v1/tickets", headers=h), Role.VIEWER),
    ("list conversations", lambda t, h: t.client.get("/v1/conversations", headers=h), Role.VIEWER),
    ("list customers", lambda t, h: t.client.get("/v1/customers", headers=h), Role.VIEWER),
    ("list users", lambda t, h: t.client.get("/v1/users", headers=h), Role.VIEWER),
    ("list teams", lambda t, h: t.client.get("/v1/teams", headers=h), Role.VIEWER),
    ("list channels", lambda t, h: t.client.get("/v1/channels", headers=h), Role.VIEWER),
    ("list sla policies", lambda t, h: t.client.get("/v1/sla-policies", headers=h), Role.VIEWER),
    (
        "create ticket",
        lambda t, h: t.client.post("/v1/tickets", json={"subject": "Role check"}, headers=h),
        Role.AGENT,
    ),
    (
        "create customer",
        lambda t, h: t.client.post("/v1/customers", json={"name": "Role check"}, headers=h),
        Role.AGENT,
    ),
    (
        "post inbound",
        lambda t, h: t.client.post(
            "/v1/inbound",
            json={
                "channel_id": t.channel_id,
                "customer": {"external_id": "role-check"},
                "text": "hi",
                "provider_message_id": uuid.uuid4().hex,
            },
            headers=h,
        ),
        Role.AGENT,
    ),
    (
        "patch ticket",
        lambda t, h: _patch_ticket(t, h),
        Role.AGENT,
    ),
    (
        "reply to conversation",
        lambda t, h: _reply(t, h),
        Role.AGENT,
    ),
    ("ai quality", lambda t, h: t.client.get("/v1/ai/quality", headers=h), Role.AGENT),
    (
        "bulk tickets",
        lambda t, h: t.client.post(
            "/v1/tickets/bulk", json={"ids": [str(uuid.uuid4())], "changes": {}}, headers=h
        ),
        Role.AGENT,
    ),
    ("list api keys", lambda t, h: t.client.get("/v1/api-keys", headers=h), Role.ADMIN),
    (
        "create api key",
        lambda t, h: t.client.post("/v1/api-keys", json={"name": "k"}, headers=h),
        Role.ADMIN,
    ),
    (
        "create channel",
        lambda t, h: t.client.post("/v1/channels", json={"type": "web", "name": "W"}, headers=h),
        Role.ADMIN,
    ),
    (
        "create team",
        lambda t, h: t.client.post("/v1/teams", json={"name": uuid.uuid4().hex}, headers=h),
        Role.ADMIN,
    ),
    (
        "create sla policy",
        lambda t, h: t.client.post(
            "/v1/sla-policies",
            json={
                "name": "S",
                "targets": {"low": {"first_response_minutes": 5, "resolution_minutes": 9}},
            },
            headers=h,
        ),
        Role.ADMIN,
    ),
    (
        "deactivate user",
        lambda t, h: t.client.delete(f"/v1/users/{t.viewer.id}", headers=h),
        Role.ADMIN,
    ),
    (
        "change user role",
        lambda t, h: t.client.patch(f"/v1/users/{t.viewer.id}", json={"role": "agent"}, headers=h),
        Role.ADMIN,
    ),
]

RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.ADMIN: 2}


async def _patch_ticket(t: TenantCtx, h: dict[str, str]) -> httpx.Response:
    ticket = await create_ticket(t)
    return await t.client.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "high"}, headers=h)


async def _reply(t: TenantCtx, h: dict[str, str]) -> httpx.Response:
    conversation = await _conversation(t)
    return await t.client.post(
        f"/v1/conversations/{conversation}/messages", json={"text": "On it"}, headers=h
    )


def _cases() -> list[Any]:
    cases = []
    for name, call, minimum in ENDPOINTS:
        for role in Role:
            for via in ("token", "api-key"):
                cases.append(
                    pytest.param(call, minimum, role, via, id=f"{name}-{role.value}-{via}")
                )
    return cases


@pytest.mark.parametrize(("call", "minimum", "role", "via"), _cases())
async def test_role_matrix(
    tenant: TenantCtx, call: Call, minimum: Role, role: Role, via: str
) -> None:
    if via == "token":
        headers = {Role.ADMIN: tenant.admin, Role.AGENT: tenant.agent, Role.VIEWER: tenant.viewer}[
            role
        ].headers
    else:
        headers = {"X-API-Key": tenant.admin_key}
        if role is not Role.ADMIN:
            headers = {"X-API-Key": (await create_api_key(tenant, role))["key"]}
    response = await call(tenant, headers)
    if RANK[role] >= RANK[minimum]:
        assert response.status_code in (200, 201, 204), response.text
    else:
        error = expect_error(response, 403, "forbidden")
        assert minimum.value in error["message"]


async def test_user_creation_by_admin_signs_in_with_its_role(tenant: TenantCtx) -> None:
    email = _new_email()
    created = expect(
        await tenant.client.post(
            "/v1/users",
            json={
                "email": email,
                "name": "New Viewer",
                "password": "pass-word-1",
                "role": "viewer",
            },
            headers=tenant.admin.headers,
        ),
        201,
    )
    assert created["role"] == "viewer"
    assert created["is_active"] is True
    assert "password" not in created
    assert "password_hash" not in created
    token = expect(
        await tenant.client.post(
            "/v1/auth/token", json={"email": email, "password": "pass-word-1"}
        ),
        200,
    )
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    expect(await tenant.client.get("/v1/tickets", headers=headers), 200)
    expect_error(
        await tenant.client.post("/v1/tickets", json={"subject": "x"}, headers=headers), 403
    )
    duplicate = await tenant.client.post(
        "/v1/users",
        json={"email": email, "name": "Again", "password": "pass-word-1"},
        headers=tenant.admin.headers,
    )
    expect_error(duplicate, 409, "duplicate")


async def test_role_change_applies_to_existing_tokens(tenant: TenantCtx) -> None:
    # The role is read from the user row on each request, not trusted from the token.
    expect_error(
        await tenant.client.post(
            "/v1/tickets", json={"subject": "x"}, headers=tenant.viewer.headers
        ),
        403,
    )
    expect(
        await tenant.client.patch(
            f"/v1/users/{tenant.viewer.id}", json={"role": "agent"}, headers=tenant.key_headers
        ),
        200,
    )
    expect(
        await tenant.client.post(
            "/v1/tickets", json={"subject": "x"}, headers=tenant.viewer.headers
        ),
        201,
    )
