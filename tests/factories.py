"""Test data builders: tenants with users and credentials, inbound messages, tickets.

Users are inserted with one password hash computed per session and get their tokens from
`issue_token` directly: Argon2 costs 50-100 ms per hash, which hundreds of tenants would
turn into minutes. The sign-in endpoint itself is tested in test_auth.py."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from core.domain.enums import Role
from core.domain.tenancy import ApiKey, Tenant, User
from core.runtime import Runtime
from core.security import generate_api_key, hash_password, issue_token
from core.settings import Settings
from models.service import Citation, KbHit, ReplyHit

JWT_SECRET = "x" * 32
PASSWORD = "correct horse battery staple"


@dataclass
class Backend:
    name: str
    settings: Settings
    runtime: Runtime
    client: httpx.AsyncClient


@dataclass(frozen=True)
class Actor:
    id: str
    headers: dict[str, str]


@dataclass
class TenantCtx:
    backend: Backend
    id: str
    slug: str
    admin: Actor
    agent: Actor
    viewer: Actor
    admin_key: str
    admin_key_id: str
    channel_id: str
    emails: dict[Role, str] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.backend.client

    @property
    def key_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def bearer(settings: Settings, user: User) -> dict[str, str]:
    token = issue_token(settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role)
    return {"Authorization": f"Bearer {token}"}


async def make_tenant(backend: Backend) -> TenantCtx:
    suffix = uuid.uuid4().hex[:12]
    key = generate_api_key()
    async with backend.runtime.sessions() as session:
        tenant = Tenant(name=f"Tenant {suffix}", slug=f"t-{suffix}")
        session.add(tenant)
        await session.flush()
        users = {
            role: User(
                tenant_id=tenant.id,
                email=f"{role.value}-{suffix}@example.test",
                name=f"{role.value.title()} {suffix}",
                role=role.value,
                password_hash=password_hash(),
            )
            for role in Role
        }
        session.add_all(users.values())
        api_key = ApiKey(
            tenant_id=tenant.id,
            name="admin key",
            prefix=key.prefix,
            key_hash=key.key_hash,
            role=Role.ADMIN.value,
        )
        session.add(api_key)
        await session.commit()
    actors = {
        role: Actor(str(user.id), bearer(backend.settings, user)) for role, user in users.items()
    }
    response = await backend.client.post(
        "/v1/channels",
        json={"type": "api", "name": "Integration", "config": {"api_token": "s3cret"}},
        headers={"X-API-Key": key.plaintext},
    )
    channel = expect(response, 201)
    return TenantCtx(
        backend=backend,
        id=str(tenant.id),
        slug=tenant.slug,
        admin=actors[Role.ADMIN],
        agent=actors[Role.AGENT],
        viewer=actors[Role.VIEWER],
        admin_key=key.plaintext,
        admin_key_id=str(api_key.id),
        channel_id=channel["id"],
        emails={role: user.email for role, user in users.items()},
    )


def expect(response: httpx.Response, status: int) -> Any:
    """The JSON body of a response that must have `status`; the body is in the failure."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: expected {status}, "
        f"got {response.status_code}: {response.text[:2000]}"
    )
    return response.json() if response.content else None


def expect_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error of a response in the API's envelope `{"error": {code, message, details}}`."""
    body = expect(response, status)
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def inbound_body(
    channel_id: str, *, external_id: str, text: str, provider_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    customer = {"external_id": external_id, **extra.pop("customer", {})}
    return {
        "channel_id": channel_id,
        "customer": customer,
        "text": text,
        "provider_message_id": provider_id or f"pm-{uuid.uuid4().hex}",
        **extra,
    }


async def inbound(
    t: TenantCtx,
    *,
    external_id: str = "customer-1",
    text: str = "Hello, I need help",
    channel_id: str | None = None,
    provider_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Post a new customer message through /v1/inbound and return the 201 body."""
    body = inbound_body(
        channel_id or t.channel_id,
        external_id=external_id,
        text=text,
        provider_id=provider_id,
        **extra,
    )
    result: dict[str, Any] = expect(
        await t.client.post("/v1/inbound", json=body, headers=t.key_headers), 201
    )
    return result


async def create_ticket(t: TenantCtx, **fields: Any) -> dict[str, Any]:
    fields.setdefault("subject", f"Ticket {uuid.uuid4().hex[:8]}")
    if fields["subject"] is None:
        del fields["subject"]
    result: dict[str, Any] = expect(
        await t.client.post("/v1/tickets", json=fields, headers=t.agent.headers), 201
    )
    return result


async def create_customer(t: TenantCtx, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", f"Customer {uuid.uuid4().hex[:8]}")
    result: dict[str, Any] = expect(
        await t.client.post("/v1/customers", json=fields, headers=t.agent.headers), 201
    )
    return result


async def create_team(t: TenantCtx, name: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"name": name or f"Team {uuid.uuid4().hex[:8]}", **fields}
    result: dict[str, Any] = expect(
        await t.client.post("/v1/teams", json=body, headers=t.key_headers), 201
    )
    return result


# A config each validated channel type accepts (its provider is never called with it).
CHANNEL_CONFIGS: dict[str, dict[str, Any]] = {
    "whatsapp": {
        "phone_number_id": "1000000001",
        "waba_id": "2000000002",
        "access_token": "wa-token",
        "app_secret": "wa-app-secret",
        "verify_token": "wa-verify",
        "graph_api_base_url": "http://127.0.0.1:9/v21.0",
    },
    "email": {"address": "support@example.com"},
}


async def create_channel(
    t: TenantCtx, type_: str = "api", name: str = "Second", config: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = {"type": type_, "name": name, "config": config or CHANNEL_CONFIGS.get(type_, {})}
    result: dict[str, Any] = expect(
        await t.client.post("/v1/channels", json=body, headers=t.key_headers), 201
    )
    return result


async def create_api_key(t: TenantCtx, role: Role) -> dict[str, Any]:
    body = {"name": f"{role.value} key", "role": role.value}
    result: dict[str, Any] = expect(
        await t.client.post("/v1/api-keys", json=body, headers=t.key_headers), 201
    )
    return result


async def create_sla_policy(t: TenantCtx, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"SLA {uuid.uuid4().hex[:8]}",
        "is_default": True,
        "targets": {"normal": {"first_response_minutes": 60, "resolution_minutes": 600}},
        **fields,
    }
    result: dict[str, Any] = expect(
        await t.client.post("/v1/sla-policies", json=body, headers=t.key_headers), 201
    )
    return result


async def get_json(t: TenantCtx, path: str, **params: Any) -> Any:
    return expect(await t.client.get(path, params=params, headers=t.viewer.headers), 200)


async def count_rows(runtime: Runtime, column: InstrumentedAttribute[Any], *where: Any) -> int:
    """`SELECT count(column) ... WHERE ...` in a fresh session."""
    async with runtime.sessions() as session:
        value = await session.scalar(select(func.count(column)).where(*where))
    return int(value or 0)


@dataclass
class FakeRetrieval:
    """A `RetrievalPort` double: canned hits, and a record of every call."""

    articles: list[KbHit] = field(default_factory=list)
    replies: list[ReplyHit] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]:
        self.calls.append(("kb_search", tenant_id, query, k, language))
        return self.articles[:k]

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        self.calls.append(("kb_refresh", tenant_id))

    async def similar_replies(self, tenant_id: uuid.UUID, text: str, k: int = 3) -> list[ReplyHit]:
        self.calls.append(("similar_replies", tenant_id, text, k))
        return self.replies[:k]

    async def close(self) -> None:
        self.calls.append(("close",))

    def made(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


def kb_hit(
    title: str = "Returns policy", text: str = "You can return items within 30 days."
) -> KbHit:
    return KbHit(Citation(uuid.uuid4(), 0, title), text, 0.9, "en")
