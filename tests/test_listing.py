"""Cursor pagination (stable under inserts, newest first) and list filters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from api.deps import read_session
from api.services import conversations, tickets
from api.services.common import as_dicts, fetch_page
from core.db import raw_read
from core.domain.enums import ConversationStatus, TicketStatus
from tests.factories import (
    TenantCtx,
    create_channel,
    create_customer,
    create_team,
    create_ticket,
    expect,
    get_json,
    inbound,
)

Maker = Callable[[TenantCtx], Awaitable[str]]


async def _ticket(t: TenantCtx) -> str:
    return str((await create_ticket(t))["id"])


async def _conversation(t: TenantCtx) -> str:
    return str((await inbound(t, external_id=uuid.uuid4().hex))["conversation_id"])


async def _customer(t: TenantCtx) -> str:
    return str((await create_customer(t))["id"])


@pytest.mark.parametrize(
    ("path", "make"),
    [("/v1/tickets", _ticket), ("/v1/conversations", _conversation), ("/v1/customers", _customer)],
    ids=["tickets", "conversations", "customers"],
)
async def test_paging_is_stable_while_rows_are_added(
    tenant: TenantCtx, path: str, make: Maker
) -> None:
    original = [await make(tenant) for _ in range(7)]
    newest_first = original[::-1]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = await get_json(tenant, path, **params)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        # Rows created between pages are newer than the cursor: they never show up later.
        await make(tenant)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == newest_first
    fresh = await get_json(tenant, path, limit=3)
    assert fresh["items"][0]["id"] not in original  # the newest rows lead a new listing


async def test_last_full_page_has_no_cursor(tenant: TenantCtx) -> None:
    for _ in range(6):
        await create_ticket(tenant)
    first = await get_json(tenant, "/v1/tickets", limit=3)
    second = await get_json(tenant, "/v1/tickets", limit=3, cursor=first["next_cursor"])
    assert len(first["items"]) == 3
    assert first["next_cursor"]
    assert len(second["items"]) == 3
    assert second["next_cursor"] is None
    everything = await get_json(tenant, "/v1/tickets")
    assert [t["id"] for t in everything["items"]] == [
        t["id"] for t in first["items"] + second["items"]
    ]
    assert [t["number"] for t in everything["items"]] == [6, 5, 4, 3, 2, 1]


def _ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


async def test_conversation_filters(tenant: TenantCtx) -> None:
    t = tenant
    web = (await create_channel(t, "web", "Web"))["id"]
    team = (await create_team(t))["id"]
    a = str((await inbound(t, external_id="a"))["conversation_id"])
    b = str((await inbound(t, external_id="b"))["conversation_id"])
    c = str((await inbound(t, external_id="c", channel_id=web))["conversation_id"])
    h = t.agent.headers
    expect(
        await t.client.post(
            f"/v1/conversations/{a}/assign", json={"assignee_id": t.agent.id}, headers=h
        ),
        200,
    )
    expect(
        await t.client.post(f"/v1/conversations/{b}/assign", json={"team_id": team}, headers=h), 200
    )
    expect(
        await t.client.patch(
            f"/v1/conversations/{b}", json={"status": "pending", "priority": "urgent"}, headers=h
        ),
        200,
    )
    await asyncio.sleep(0.01)
    since = datetime.now(UTC)
    await asyncio.sleep(0.01)
    expect(
        await t.client.patch(
            f"/v1/conversations/{c}", json={"tags": ["vip", "billing"]}, headers=h
        ),
        200,
    )

    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {a, b, c}),
        ({"status": "open"}, {a, c}),
        ({"status": ["open", "pending"]}, {a, b, c}),
        ({"status": "resolved"}, set()),
        ({"channel_id": web}, {c}),
        ({"channel_id": t.channel_id}, {a, b}),
        ({"assignee_id": t.agent.id}, {a}),
        ({"team_id": team}, {b}),
        ({"tag": "vip"}, {c}),
        ({"tag": "vi"}, set()),  # whole tags only
        ({"priority": "urgent"}, {b}),
        ({"priority": "normal"}, {a, c}),
        ({"updated_since": since.isoformat()}, {c}),
        ({"status": "open", "channel_id": t.channel_id}, {a}),
    ]
    for params, expected in cases:
        assert _ids(await get_json(t, "/v1/conversations", **params)) == expected, params


async def test_ticket_filters(tenant: TenantCtx) -> None:
    t = tenant
    web = (await create_channel(t, "web", "Web"))["id"]
    team = (await create_team(t))["id"]
    conv_api = str((await inbound(t, external_id="x"))["conversation_id"])
    conv_web = str((await inbound(t, external_id="y", channel_id=web))["conversation_id"])
    a = (await create_ticket(t, conversation_id=conv_api, assignee_id=t.agent.id, tags=["vip"]))[
        "id"
    ]
    b = (await create_ticket(t, conversation_id=conv_web, team_id=team, priority="high"))["id"]
    c = (await create_ticket(t, status="pending", tags=["billing", "vip"]))["id"]
    await asyncio.sleep(0.01)
    since = datetime.now(UTC)
    await asyncio.sleep(0.01)
    expect(
        await t.client.patch(f"/v1/tickets/{b}", json={"status": "open"}, headers=t.agent.headers),
        200,
    )
    requester = (await get_json(t, f"/v1/conversations/{conv_api}"))["customer_id"]

    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {a, b, c}),
        ({"status": "new"}, {a}),
        ({"status": ["open", "pending"]}, {b, c}),
        ({"priority": "high"}, {b}),
        ({"assignee_id": t.agent.id}, {a}),
        ({"team_id": team}, {b}),
        ({"channel_id": web}, {b}),
        ({"channel_id": t.channel_id}, {a}),
        ({"tag": "vip"}, {a, c}),
        ({"tag": "billing"}, {c}),
        ({"requester_id": requester}, {a}),
        ({"updated_since": since.isoformat()}, {b}),
        ({"tag": "vip", "status": "pending"}, {c}),
    ]
    for params, expected in cases:
        assert _ids(await get_json(t, "/v1/tickets", **params)) == expected, params


async def test_customer_listing_filters(tenant: TenantCtx) -> None:
    ana = (await create_customer(tenant, name="Ana Lopez", email="ana@example.test"))["id"]
    bob = (await create_customer(tenant, name="Bob", phone="+1 (555) 010-0000"))["id"]
    assert _ids(await get_json(tenant, "/v1/customers", q="lopez")) == {ana}
    assert _ids(await get_json(tenant, "/v1/customers", q="ANA@EXAMPLE")) == {ana}
    assert _ids(await get_json(tenant, "/v1/customers", email="Ana@Example.Test")) == {ana}
    assert _ids(await get_json(tenant, "/v1/customers", phone="15550100000")) == {bob}
    assert _ids(await get_json(tenant, "/v1/customers", phone="+1 555 010 0000")) == {bob}
    assert _ids(await get_json(tenant, "/v1/customers", q="nobody")) == set()


async def test_list_pages_read_on_the_driver_match_sqlalchemy_row_for_row(
    tenant: TenantCtx,
) -> None:
    """Read-only requests on PostgreSQL run list pages on asyncpg directly
    (core/db/raw_read); every value must come back as SQLAlchemy's own execution gives it."""
    t = tenant
    team = (await create_team(t))["id"]
    conversation = str((await inbound(t, external_id="raw-1"))["conversation_id"])
    await inbound(t, external_id="raw-2")
    expect(
        await t.client.patch(
            f"/v1/conversations/{conversation}",
            json={"tags": ["vip"], "priority": "high"},
            headers=t.agent.headers,
        ),
        200,
    )
    await create_ticket(t, conversation_id=conversation, tags=["vip"], team_id=team)
    await create_ticket(t, status="pending", subject="refund for a broken lamp")
    runtime = t.backend.runtime
    tenant_id = uuid.UUID(t.id)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    cases: list[tuple[Any, dict[str, Any]]] = [
        (conversations.conversation_query, {}),
        (conversations.conversation_query, {"status": [ConversationStatus.OPEN]}),
        (conversations.conversation_query, {"tag": "vip", "updated_since": since}),
        (tickets.ticket_query, {}),
        (tickets.ticket_query, {"q": "refund"}),
        (tickets.ticket_query, {"status": [TicketStatus.NEW, TicketStatus.PENDING]}),
    ]
    async with read_session(runtime) as session:
        assert raw_read.usable(session) is (t.backend.name == "postgres")
        for build, filters in cases:
            statement, params = build(session, tenant_id, **filters)
            via_sqlalchemy = as_dicts(
                (await session.execute(statement, {**params, "limit": 50})).all()
            )
            assert via_sqlalchemy, (build.__name__, filters)
            if raw_read.usable(session):
                on_driver = await raw_read.fetch_dicts(session, statement, {**params, "limit": 50})
                assert on_driver == via_sqlalchemy, (build.__name__, filters)
            page, _ = await fetch_page(session, statement, params, 50)
            assert page == via_sqlalchemy, (build.__name__, filters)
