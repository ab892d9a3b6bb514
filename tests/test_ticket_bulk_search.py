"""Bulk ticket updates and full-text search (PostgreSQL text search and SQLite FTS5)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.factories import TenantCtx, create_ticket, expect, expect_error, get_json, inbound


async def _bulk(t: TenantCtx, ids: list[str], changes: dict[str, Any]) -> httpx.Response:
    return await t.client.post(
        "/v1/tickets/bulk", json={"ids": ids, "changes": changes}, headers=t.agent.headers
    )


async def test_bulk_reports_per_id_and_applies_the_legal_ones(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    fresh = [(await create_ticket(tenant, tags=["old", "keep"]))["id"] for _ in range(3)]
    closed = (await create_ticket(tenant))["id"]
    for status in ("solved", "closed"):
        expect(
            await tenant.client.patch(
                f"/v1/tickets/{closed}", json={"status": status}, headers=tenant.agent.headers
            ),
            200,
        )
    foreign = (await create_ticket(other_tenant))["id"]
    missing = str(uuid.uuid4())
    body = expect(
        await _bulk(
            tenant,
            [*fresh, closed, foreign, missing, fresh[0]],
            {"status": "pending", "priority": "high", "add_tags": ["bulk"], "remove_tags": ["old"]},
        ),
        200,
    )
    assert body["updated"] == 3
    assert body["failed"] == 3
    results = {r["id"]: r for r in body["results"]}
    assert [r["id"] for r in body["results"]] == [*fresh, closed, foreign, missing]  # deduplicated
    for ticket_id in fresh:
        assert results[ticket_id]["ok"] is True
        assert results[ticket_id]["version"] == 2
        ticket = await get_json(tenant, f"/v1/tickets/{ticket_id}")
        assert (ticket["status"], ticket["priority"]) == ("pending", "high")
        assert ticket["tags"] == ["keep", "bulk"]
    assert results[closed]["error"]["code"] == "illegal_transition"
    assert results[closed]["error"]["details"]["allowed"] == []
    assert results[foreign]["error"]["code"] == "not_found"
    assert results[missing]["error"]["code"] == "not_found"
    # The refused ticket kept everything, tags included: its savepoint was rolled back.
    untouched = await get_json(tenant, f"/v1/tickets/{closed}")
    assert (untouched["status"], untouched["priority"], untouched["tags"]) == (
        "closed",
        "normal",
        [],
    )
    foreign_after = expect(
        await other_tenant.client.get(
            f"/v1/tickets/{foreign}", headers=other_tenant.viewer.headers
        ),
        200,
    )
    assert foreign_after["status"] == "new"
    assert foreign_after["version"] == 1


async def test_bulk_history_has_one_event_per_change(tenant: TenantCtx) -> None:
    ticket = (await create_ticket(tenant))["id"]
    expect(await _bulk(tenant, [ticket], {"status": "open", "assignee_id": tenant.agent.id}), 200)
    events = await get_json(tenant, f"/v1/tickets/{ticket}/events")
    assert [e["event_type"] for e in events] == [
        "ticket.created",
        "ticket.status_changed",
        "ticket.assigned",
    ]


async def test_bulk_limit_is_1000_ids(tenant: TenantCtx) -> None:
    ids = [str(uuid.uuid4()) for _ in range(1001)]
    error = expect_error(await _bulk(tenant, ids, {"priority": "low"}), 422, "validation_error")
    assert any(d["loc"][-1] == "ids" for d in error["details"])
    body = expect(await _bulk(tenant, ids[:1000], {"priority": "low"}), 200)
    assert body["updated"] == 0
    assert body["failed"] == 1000
    expect_error(await _bulk(tenant, [], {"priority": "low"}), 422)


async def test_bulk_null_for_a_required_field_is_400(tenant: TenantCtx) -> None:
    ticket = (await create_ticket(tenant))["id"]
    for field in ("status", "priority", "type"):
        expect_error(await _bulk(tenant, [ticket], {field: None}), 400, "null_not_allowed")
    after = await get_json(tenant, f"/v1/tickets/{ticket}")
    assert (after["status"], after["priority"], after["version"]) == ("new", "normal", 1)
    # Null is how an assignment is cleared, though.
    expect(await _bulk(tenant, [ticket], {"assignee_id": tenant.agent.id}), 200)
    expect(await _bulk(tenant, [ticket], {"assignee_id": None}), 200)
    assert (await get_json(tenant, f"/v1/tickets/{ticket}"))["assignee_id"] is None


async def test_bulk_with_a_foreign_assignee_is_404(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    ticket = (await create_ticket(tenant))["id"]
    expect_error(await _bulk(tenant, [ticket], {"assignee_id": other_tenant.agent.id}), 404)
    assert (await get_json(tenant, f"/v1/tickets/{ticket}"))["assignee_id"] is None


async def _search(t: TenantCtx, q: str, path: str = "/v1/tickets") -> set[str]:
    return {item["id"] for item in (await get_json(t, path, q=q))["items"]}


async def test_search_ticket_subject_and_description(tenant: TenantCtx) -> None:
    kettle = (await create_ticket(tenant, subject="Refund for broken kettle"))["id"]
    toaster = (
        await create_ticket(tenant, subject="Appliance question", description="The toaster sparks")
    )["id"]
    assert await _search(tenant, "kettle") == {kettle}
    assert await _search(tenant, "KETTLE") == {kettle}
    assert await _search(tenant, "refund kettle") == {kettle}  # every word must match
    assert await _search(tenant, "kettle toaster") == set()
    assert await _search(tenant, "toaster") == {toaster}
    assert await _search(tenant, "microwave") == set()
    # A later edit of the subject is searchable (triggers / expression index follow it).
    expect(
        await tenant.client.patch(
            f"/v1/tickets/{toaster}",
            json={"subject": "Microwave smoke"},
            headers=tenant.agent.headers,
        ),
        200,
    )
    assert await _search(tenant, "microwave") == {toaster}


async def test_search_messages_of_linked_conversations(tenant: TenantCtx) -> None:
    received = await inbound(tenant, external_id="p", text="My parcel never arrived at the depot")
    conversation = str(received["conversation_id"])
    linked = (await create_ticket(tenant, subject="Delivery issue", conversation_id=conversation))[
        "id"
    ]
    unlinked = (await create_ticket(tenant, subject="Delivery issue too"))["id"]
    assert await _search(tenant, "parcel") == {linked}
    assert await _search(tenant, "delivery") == {linked, unlinked}
    assert await _search(tenant, "parcel", "/v1/conversations") == {conversation}
    # An agent reply is searched too, and a link made later counts.
    expect(
        await tenant.client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "Courier rescheduled"},
            headers=tenant.agent.headers,
        ),
        201,
    )
    expect(
        await tenant.client.post(
            f"/v1/tickets/{unlinked}/conversations",
            json={"conversation_id": conversation},
            headers=tenant.agent.headers,
        ),
        200,
    )
    assert await _search(tenant, "courier") == {linked, unlinked}


async def test_search_follows_conversation_merges(tenant: TenantCtx) -> None:
    target = str(
        (await inbound(tenant, external_id="m1", text="Where is my blender"))["conversation_id"]
    )
    source_channel = tenant.channel_id
    source = str(
        (
            await inbound(
                tenant, external_id="m2", text="Zeppelin sighting", channel_id=source_channel
            )
        )["conversation_id"]
    )
    ticket = (await create_ticket(tenant, subject="Blender", conversation_id=target))["id"]
    assert await _search(tenant, "zeppelin") == set()
    expect(
        await tenant.client.post(
            "/v1/conversations/merge",
            json={"target_id": target, "source_ids": [source]},
            headers=tenant.agent.headers,
        ),
        200,
    )
    # The moved message now belongs to the ticket's thread, and is found through it.
    assert await _search(tenant, "zeppelin") == {ticket}


FTS_SYNTAX = [
    '"unterminated',
    '""',
    '"kettle"',
    "*",
    "kettle*",
    "AND",
    "kettle AND",
    "OR OR",
    "NOT kettle",
    "(kettle",
    "kettle)",
    "()",
    "-kettle",
    "kettle -toaster",
    "NEAR(kettle toaster)",
    "subject:kettle",
    "'",
    "\\",
    "^kettle",
    "a & b | !c",
    "kettle <-> toaster",
    "::",
    "%_%",
    "café ñandú",
    "🙂",
    "   ",
    "a" * 500,
]


@pytest.mark.parametrize("path", ["/v1/tickets", "/v1/conversations"])
async def test_search_syntax_characters_never_fail(tenant: TenantCtx, path: str) -> None:
    received = await inbound(tenant, external_id="s", text="The kettle is broken")
    await create_ticket(
        tenant, subject="Broken kettle", conversation_id=str(received["conversation_id"])
    )
    failures = []
    for q in FTS_SYNTAX:
        response = await tenant.client.get(path, params={"q": q}, headers=tenant.viewer.headers)
        if response.status_code != 200:
            failures.append(f"{q!r}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
    # Punctuation around a word still finds it on both dialects.
    for q in ['"kettle"', "kettle*", "(kettle", "kettle)", "^kettle"]:
        assert len((await get_json(tenant, path, q=q))["items"]) == 1, q
