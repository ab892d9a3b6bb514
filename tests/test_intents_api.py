"""A tenant's intent taxonomy: defaults switched on and off, custom intents, limits, roles
and isolation, on both backends. (That the taxonomy changes answers: test_ai_api.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from models.heads import INTENT_LABELS
from tests.factories import TenantCtx, expect, expect_error

INTENTS = "/v1/intents"
LOYALTY = {
    "name": "loyalty_points",
    "description": "Questions about loyalty points: balance, expiry, redeeming them",
    "examples": [
        "How many points do I have?",
        "My points expired without warning",
        "¿Cómo uso mis puntos en la tienda?",
    ],
}


async def intents(t: TenantCtx) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = expect(
        await t.client.get(INTENTS, headers=t.viewer.headers), 200
    )["items"]
    return items


async def test_defaults_listed_and_switched(tenant: TenantCtx) -> None:
    listed = await intents(tenant)
    assert [i["name"] for i in listed] == list(INTENT_LABELS)
    assert all(i["kind"] == "default" and i["enabled"] for i in listed)
    assert all(i["description"] for i in listed)
    h = tenant.admin.headers
    off = await tenant.client.patch(f"{INTENTS}/praise", json={"enabled": False}, headers=h)
    assert expect(off, 200) == {**listed[INTENT_LABELS.index("praise")], "enabled": False}
    assert [i["name"] for i in await intents(tenant) if not i["enabled"]] == ["praise"]
    again = await tenant.client.patch(f"{INTENTS}/praise", json={"enabled": True}, headers=h)
    assert expect(again, 200)["enabled"] is True
    examples = {"examples": ["a", "b", "c"]}
    refused = await tenant.client.patch(f"{INTENTS}/praise", json=examples, headers=h)
    expect_error(refused, 400, "default_intent")
    expect_error(await tenant.client.delete(f"{INTENTS}/praise", headers=h), 400, "default_intent")
    taken = await tenant.client.post(INTENTS, json={**LOYALTY, "name": "billing"}, headers=h)
    expect_error(taken, 409, "default_intent")


async def test_custom_intent_life_cycle(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    h = tenant.admin.headers
    created = expect(await tenant.client.post(INTENTS, json=LOYALTY, headers=h), 201)
    assert created == {**LOYALTY, "kind": "custom", "enabled": True}
    assert (await intents(tenant))[-1] == created
    duplicate = await tenant.client.post(INTENTS, json=LOYALTY, headers=h)
    expect_error(duplicate, 409, "duplicate_intent")
    path = f"{INTENTS}/loyalty_points"
    examples = [*LOYALTY["examples"], "Punkte einlösen?"]
    edited = await tenant.client.patch(path, json={"examples": examples}, headers=h)
    assert expect(edited, 200)["examples"] == examples
    nulled = await tenant.client.patch(path, json={"description": None}, headers=h)
    expect_error(nulled, 400, "null_not_allowed")

    assert [i["name"] for i in await intents(other_tenant)] == list(INTENT_LABELS)
    foreign = other_tenant.admin.headers
    expect_error(await tenant.client.patch(path, json={}, headers=foreign), 404, "not_found")
    expect_error(await tenant.client.delete(path, headers=foreign), 404, "not_found")
    mine_too = await tenant.client.post(INTENTS, json=LOYALTY, headers=foreign)
    expect(mine_too, 201)  # names are unique per tenant, not across tenants

    assert (await tenant.client.delete(path, headers=h)).status_code == 204
    expect_error(await tenant.client.delete(path, headers=h), 404, "not_found")
    assert [i["name"] for i in await intents(tenant)] == list(INTENT_LABELS)


async def test_only_admins_manage_intents(tenant: TenantCtx) -> None:
    for actor in (tenant.agent, tenant.viewer):
        created = await tenant.client.post(INTENTS, json=LOYALTY, headers=actor.headers)
        expect_error(created, 403, "forbidden")
        switched = await tenant.client.patch(
            f"{INTENTS}/praise", json={"enabled": False}, headers=actor.headers
        )
        expect_error(switched, 403, "forbidden")
    assert len(await intents(tenant)) == len(INTENT_LABELS)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Gift Card"},
        {"name": "x"},
        {"name": "a" * 65},
        {"examples": ["one", "two"]},
        {"examples": ["same", "same", " same "]},
        {"examples": ["x"] * 51},
        {"examples": ["ok", "fine", ""]},
        {"description": ""},
        {"description": "x" * 501},
        {"weight": 2},
    ],
    ids=[
        "spaces",
        "short-name",
        "long-name",
        "two-examples",
        "repeated-examples",
        "too-many-examples",
        "empty-example",
        "no-description",
        "long-description",
        "unknown-field",
    ],
)
async def test_bad_intents_are_refused(tenant: TenantCtx, change: dict[str, Any]) -> None:
    response = await tenant.client.post(
        INTENTS, json={**LOYALTY, **change}, headers=tenant.admin.headers
    )
    expect_error(response, 422, "validation_error")
