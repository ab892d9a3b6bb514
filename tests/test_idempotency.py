"""Idempotency-Key on POST: replays, reuse with another body, concurrency, failures."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from core.domain.customers import Customer
from tests.factories import TenantCtx, count_rows, expect, expect_error


async def _post_customer(
    t: TenantCtx, body: dict[str, Any], key: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await t.client.post(
        "/v1/customers", json=body, headers={**(headers or t.agent.headers), "Idempotency-Key": key}
    )


async def test_idempotent_replay_and_key_reuse(tenant: TenantCtx) -> None:
    key = uuid.uuid4().hex
    body = {"name": "Bob", "email": "bob@example.test"}
    first = await _post_customer(tenant, body, key)
    created = expect(first, 201)
    assert "idempotent-replayed" not in first.headers
    replay = await _post_customer(tenant, body, key)
    assert replay.status_code == 201
    assert replay.json() == created
    assert replay.headers["idempotent-replayed"] == "true"
    tenant_id = uuid.UUID(tenant.id)
    assert (
        await count_rows(tenant.backend.runtime, Customer.id, Customer.tenant_id == tenant_id) == 1
    )
    reused = await _post_customer(tenant, {**body, "name": "Robert"}, key)
    expect_error(reused, 422, "idempotency_key_reused")
    # The key belongs to a credential: another caller's identical key is a new request.
    other = await _post_customer(tenant, {"name": "Other"}, key, headers=tenant.admin.headers)
    assert expect(other, 201)["id"] != created["id"]
    assert (
        await count_rows(tenant.backend.runtime, Customer.id, Customer.tenant_id == tenant_id) == 2
    )


async def test_failed_requests_are_not_remembered(tenant: TenantCtx) -> None:
    key = uuid.uuid4().hex
    expect_error(await _post_customer(tenant, {"email": "broken"}, key), 422, "validation_error")
    fixed = await _post_customer(tenant, {"email": "fixed@example.test"}, key)
    assert expect(fixed, 201)["email"] == "fixed@example.test"


async def test_idempotency_key_length_is_checked(tenant: TenantCtx) -> None:
    response = await _post_customer(tenant, {"name": "x"}, "k" * 256)
    expect_error(response, 400, "invalid_idempotency_key")


async def test_concurrent_requests_with_one_key_run_once(tenant: TenantCtx) -> None:
    key = uuid.uuid4().hex
    body = {"name": "Racer", "email": "racer@example.test"}
    responses = await asyncio.gather(*(_post_customer(tenant, body, key) for _ in range(5)))
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.text for r in responses]
    assert len({r.json()["id"] for r in created}) == 1
    for response in responses:
        if response.status_code == 201:
            continue
        # A duplicate that arrives while the first still runs is told so, not run twice.
        expect_error(response, 409, "idempotency_in_progress")
    tenant_id = uuid.UUID(tenant.id)
    assert (
        await count_rows(tenant.backend.runtime, Customer.id, Customer.tenant_id == tenant_id) == 1
    )
    replay = await _post_customer(tenant, body, key)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == created[0].json()["id"]


async def test_keys_only_apply_to_post(tenant: TenantCtx) -> None:
    customer = expect(await _post_customer(tenant, {"name": "P"}, "patch-key"), 201)
    for name in ("Q", "R"):
        patched = await tenant.client.patch(
            f"/v1/customers/{customer['id']}",
            json={"name": name},
            headers={**tenant.agent.headers, "Idempotency-Key": "patch-key"},
        )
        assert expect(patched, 200)["name"] == name
        assert "idempotent-replayed" not in patched.headers
