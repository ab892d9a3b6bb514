"""Tenant isolation: another tenant's id is a 404 on every resource and never listed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from core.domain.enums import Role
from tests.factories import (
    Backend,
    TenantCtx,
    create_api_key,
    create_customer,
    create_sla_policy,
    create_team,
    create_ticket,
    expect,
    expect_error,
    inbound,
    make_tenant,
)


@dataclass
class Victim:
    """Tenant A's objects; tenant B (the intruder) tries to reach each of them."""

    t: TenantCtx
    team: str
    api_key: str
    customer: str
    conversation: str
    ticket: str
    policy: str


@pytest_asyncio.fixture(loop_scope="session")
async def victim(backend: Backend) -> Victim:
    t = await make_tenant(backend)
    received = await inbound(t, external_id="victim", text="private order question")
    conversation = str(received["conversation_id"])
    expect(
        await t.client.post(
            f"/v1/conversations/{conversation}/notes",
            json={"body": "secret"},
            headers=t.agent.headers,
        ),
        201,
    )
    return Victim(
        t=t,
        team=(await create_team(t, member_ids=[t.agent.id]))["id"],
        api_key=(await create_api_key(t, Role.VIEWER))["id"],
        customer=(await create_customer(t, email=f"v-{uuid.uuid4().hex[:6]}@example.test"))["id"],
        conversation=conversation,
        ticket=(await create_ticket(t, conversation_id=conversation))["id"],
        policy=(await create_sla_policy(t))["id"],
    )


async def _all_404(
    intruder: TenantCtx, calls: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    leaks = []
    for method, path, body in calls:
        for headers in (intruder.admin.headers, intruder.key_headers):
            response = await intruder.client.request(method, path, json=body, headers=headers)
            if response.status_code != 404:
                leaks.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
            else:
                expect_error(response, 404, "not_found")
    assert not leaks, "\n".join(leaks)


async def test_users(victim: Victim, other_tenant: TenantCtx) -> None:
    uid = victim.t.agent.id
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/users/{uid}", None),
            ("PATCH", f"/v1/users/{uid}", {"name": "Hijacked", "role": "viewer"}),
            ("DELETE", f"/v1/users/{uid}", None),
            ("POST", "/v1/teams", {"name": "steal", "member_ids": [uid]}),
        ],
    )
    user = expect(
        await victim.t.client.get(f"/v1/users/{uid}", headers=victim.t.viewer.headers), 200
    )
    assert user["is_active"] is True
    assert user["role"] == "agent"
    assert user["name"] != "Hijacked"


async def test_teams(victim: Victim, other_tenant: TenantCtx) -> None:
    tid = victim.team
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/teams/{tid}", None),
            ("PATCH", f"/v1/teams/{tid}", {"name": "Hijacked"}),
            ("DELETE", f"/v1/teams/{tid}", None),
            ("PATCH", f"/v1/users/{other_tenant.agent.id}", {"team_ids": [tid]}),
        ],
    )
    team = expect(
        await victim.t.client.get(f"/v1/teams/{tid}", headers=victim.t.viewer.headers), 200
    )
    assert team["name"] != "Hijacked"


async def test_api_keys(victim: Victim, other_tenant: TenantCtx) -> None:
    kid = victim.api_key
    await _all_404(
        other_tenant,
        [("GET", f"/v1/api-keys/{kid}", None), ("DELETE", f"/v1/api-keys/{kid}", None)],
    )
    key = expect(
        await victim.t.client.get(f"/v1/api-keys/{kid}", headers=victim.t.key_headers), 200
    )
    assert key["revoked_at"] is None


async def test_channels(victim: Victim, other_tenant: TenantCtx) -> None:
    cid = victim.t.channel_id
    inbound_body = {
        "channel_id": cid,
        "customer": {"external_id": "intruder"},
        "text": "injected",
        "provider_message_id": uuid.uuid4().hex,
    }
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/channels/{cid}", None),
            ("PATCH", f"/v1/channels/{cid}", {"is_active": False, "name": "Hijacked"}),
            ("POST", "/v1/inbound", inbound_body),
        ],
    )
    channel = expect(
        await victim.t.client.get(f"/v1/channels/{cid}", headers=victim.t.viewer.headers), 200
    )
    assert channel["is_active"] is True
    assert channel["name"] != "Hijacked"


async def test_customers(victim: Victim, other_tenant: TenantCtx) -> None:
    cid = victim.customer
    mine = (await create_customer(other_tenant))["id"]
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/customers/{cid}", None),
            ("PATCH", f"/v1/customers/{cid}", {"name": "Hijacked"}),
            ("DELETE", f"/v1/customers/{cid}", None),
            ("POST", f"/v1/customers/{cid}/merge", {"source_id": mine}),
            ("POST", f"/v1/customers/{mine}/merge", {"source_id": cid}),
            ("POST", "/v1/tickets", {"subject": "x", "requester_id": cid}),
        ],
    )
    customer = expect(
        await victim.t.client.get(f"/v1/customers/{cid}", headers=victim.t.viewer.headers), 200
    )
    assert customer["name"] != "Hijacked"
    assert customer["merged_into_id"] is None


async def test_conversations(victim: Victim, other_tenant: TenantCtx) -> None:
    cid = victim.conversation
    own = str((await inbound(other_tenant, external_id="own"))["conversation_id"])
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/conversations/{cid}", None),
            ("PATCH", f"/v1/conversations/{cid}", {"status": "resolved"}),
            ("POST", f"/v1/conversations/{cid}/messages", {"text": "injected"}),
            ("POST", f"/v1/conversations/{cid}/notes", {"body": "injected"}),
            ("POST", f"/v1/conversations/{cid}/assign", {"assignee_id": None}),
            ("POST", f"/v1/conversations/{own}/assign", {"assignee_id": victim.t.agent.id}),
            ("POST", f"/v1/conversations/{own}/assign", {"team_id": victim.team}),
            ("POST", "/v1/conversations/merge", {"target_id": cid, "source_ids": [own]}),
            ("POST", "/v1/conversations/merge", {"target_id": own, "source_ids": [cid]}),
            ("POST", "/v1/tickets", {"conversation_id": cid}),
        ],
    )
    detail = expect(
        await victim.t.client.get(f"/v1/conversations/{cid}", headers=victim.t.viewer.headers), 200
    )
    assert detail["status"] == "open"
    assert detail["merged_into_id"] is None
    assert [m["text"] for m in detail["messages"]] == ["private order question"]
    assert [n["body"] for n in detail["notes"]] == ["secret"]
    own_detail = expect(
        await other_tenant.client.get(
            f"/v1/conversations/{own}", headers=other_tenant.viewer.headers
        ),
        200,
    )
    assert own_detail["merged_into_id"] is None
    assert own_detail["assignee_id"] is None


async def test_tickets(victim: Victim, other_tenant: TenantCtx) -> None:
    tid = victim.ticket
    own_ticket = (await create_ticket(other_tenant))["id"]
    own_conversation = str((await inbound(other_tenant, external_id="own"))["conversation_id"])
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/tickets/{tid}", None),
            ("PATCH", f"/v1/tickets/{tid}", {"status": "solved"}),
            ("GET", f"/v1/tickets/{tid}/events", None),
            ("POST", f"/v1/tickets/{tid}/conversations", {"conversation_id": own_conversation}),
            (
                "POST",
                f"/v1/tickets/{own_ticket}/conversations",
                {"conversation_id": victim.conversation},
            ),
            ("PATCH", f"/v1/tickets/{own_ticket}", {"assignee_id": victim.t.agent.id}),
            ("PATCH", f"/v1/tickets/{own_ticket}", {"team_id": victim.team}),
        ],
    )
    bulk = expect(
        await other_tenant.client.post(
            "/v1/tickets/bulk",
            json={"ids": [tid, own_ticket], "changes": {"status": "open"}},
            headers=other_tenant.agent.headers,
        ),
        200,
    )
    by_id = {r["id"]: r for r in bulk["results"]}
    assert by_id[tid]["ok"] is False
    assert by_id[tid]["error"]["code"] == "not_found"
    assert by_id[own_ticket]["ok"] is True
    ticket = expect(
        await victim.t.client.get(f"/v1/tickets/{tid}", headers=victim.t.viewer.headers), 200
    )
    assert ticket["status"] == "new"
    assert ticket["version"] == 1
    assert ticket["conversation_ids"] == [victim.conversation]


async def test_sla_policies(victim: Victim, other_tenant: TenantCtx) -> None:
    pid = victim.policy
    await _all_404(
        other_tenant,
        [
            ("GET", f"/v1/sla-policies/{pid}", None),
            ("PATCH", f"/v1/sla-policies/{pid}", {"name": "Hijacked"}),
            ("DELETE", f"/v1/sla-policies/{pid}", None),
            ("POST", "/v1/tickets", {"subject": "x", "sla_policy_id": pid}),
        ],
    )
    policy = expect(
        await victim.t.client.get(f"/v1/sla-policies/{pid}", headers=victim.t.viewer.headers), 200
    )
    assert policy["name"] != "Hijacked"


async def test_lists_never_show_another_tenant(victim: Victim, other_tenant: TenantCtx) -> None:
    v = victim
    owned = {
        "/v1/users": {v.t.admin.id, v.t.agent.id, v.t.viewer.id},
        "/v1/teams": {v.team},
        "/v1/api-keys": {v.api_key, v.t.admin_key_id},
        "/v1/channels": {v.t.channel_id},
        "/v1/customers": {v.customer},
        "/v1/conversations": {v.conversation},
        "/v1/tickets": {v.ticket},
        "/v1/sla-policies": {v.policy},
    }
    for path, ids in owned.items():
        seen_by_owner = _ids(expect(await v.t.client.get(path, headers=v.t.key_headers), 200))
        assert ids <= seen_by_owner, path  # the check below is not vacuous
        seen_by_other = _ids(
            expect(await other_tenant.client.get(path, headers=other_tenant.key_headers), 200)
        )
        assert not ids & seen_by_other, path
    # Filters and searches with the victim's ids or words find nothing either.
    for path, params in [
        ("/v1/tickets", {"q": "private"}),
        ("/v1/conversations", {"q": "private"}),
        ("/v1/tickets", {"assignee_id": v.t.agent.id}),
        ("/v1/conversations", {"channel_id": v.t.channel_id}),
        ("/v1/tickets", {"requester_id": v.customer}),
        ("/v1/customers", {"email": "victim"}),
    ]:
        found = expect(
            await other_tenant.client.get(path, params=params, headers=other_tenant.key_headers),
            200,
        )
        assert found["items"] == [], (path, params)


def _ids(body: Any) -> set[str]:
    items = body["items"] if isinstance(body, dict) else body
    return {item["id"] for item in items}
