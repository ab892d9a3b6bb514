"""Inbound messages: customer resolution, threading, and idempotency under concurrency."""

from __future__ import annotations

import asyncio
import uuid

from core.domain.conversations import Conversation, Message
from core.domain.customers import Customer, CustomerIdentity
from core.events.store import OutboxRecord
from tests.factories import (
    TenantCtx,
    count_rows,
    create_channel,
    expect,
    expect_error,
    get_json,
    inbound,
    inbound_body,
)


async def test_new_message_opens_a_conversation(tenant: TenantCtx) -> None:
    body = inbound_body(
        tenant.channel_id,
        external_id="ext-1",
        text="Where is my order 1234?\nIt is late.",
        customer={"name": "Ana", "email": "Ana@Example.test"},
    )
    created = expect(
        await tenant.client.post("/v1/inbound", json=body, headers=tenant.agent.headers), 201
    )
    assert created["created"] is True
    message = created["message"]
    assert (message["direction"], message["sender_type"], message["delivery_status"]) == (
        "inbound",
        "customer",
        "received",
    )
    assert message["provider_message_id"] == body["provider_message_id"]
    conversation = await get_json(tenant, f"/v1/conversations/{created['conversation_id']}")
    assert conversation["subject"] == "Where is my order 1234?"
    assert conversation["status"] == "open"
    assert conversation["message_count"] == 1
    assert conversation["customer_id"] == created["customer_id"]
    customer = await get_json(tenant, f"/v1/customers/{created['customer_id']}")
    assert customer["name"] == "Ana"
    assert customer["email"] == "ana@example.test"
    assert customer["identities"] == [{"kind": "external", "value": "ext-1"}]


async def test_duplicate_is_200_with_the_stored_message(tenant: TenantCtx) -> None:
    body = inbound_body(tenant.channel_id, external_id="dup", text="once")
    first = expect(
        await tenant.client.post("/v1/inbound", json=body, headers=tenant.key_headers), 201
    )
    again = expect(
        await tenant.client.post(
            "/v1/inbound", json={**body, "text": "edited"}, headers=tenant.key_headers
        ),
        200,
    )
    assert again["created"] is False
    assert again["message"] == first["message"]
    assert (again["conversation_id"], again["customer_id"]) == (
        first["conversation_id"],
        first["customer_id"],
    )


async def test_same_provider_id_on_another_channel_is_a_new_message(tenant: TenantCtx) -> None:
    other = (await create_channel(tenant))["id"]
    provider_id = uuid.uuid4().hex
    first = await inbound(tenant, external_id="c", provider_id=provider_id)
    second = await inbound(tenant, external_id="c", provider_id=provider_id, channel_id=other)
    assert first["message"]["id"] != second["message"]["id"]
    assert first["customer_id"] == second["customer_id"]  # one person, two channels
    assert first["conversation_id"] != second["conversation_id"]  # one thread per channel


async def test_twenty_concurrent_duplicates(tenant: TenantCtx) -> None:
    runtime = tenant.backend.runtime
    body = inbound_body(tenant.channel_id, external_id="burst-dup", text="Are you there?")
    responses = await asyncio.gather(
        *(
            tenant.client.post("/v1/inbound", json=body, headers=tenant.key_headers)
            for _ in range(20)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], [
        r.text for r in responses if r.status_code not in (200, 201)
    ]
    bodies = [r.json() for r in responses]
    assert len({b["message"]["id"] for b in bodies}) == 1
    assert len({b["conversation_id"] for b in bodies}) == 1
    assert sum(b["created"] for b in bodies) == 1
    tenant_id = uuid.UUID(tenant.id)
    assert (
        await count_rows(
            runtime, Message.id, Message.provider_message_id == body["provider_message_id"]
        )
        == 1
    )
    assert (
        await count_rows(runtime, CustomerIdentity.id, CustomerIdentity.tenant_id == tenant_id) == 1
    )
    assert await count_rows(runtime, Customer.id, Customer.tenant_id == tenant_id) == 1
    assert await count_rows(runtime, Conversation.id, Conversation.tenant_id == tenant_id) == 1
    # One announcement each: the losers wrote nothing.
    assert await count_rows(runtime, OutboxRecord.id, OutboxRecord.tenant_id == tenant_id) == 3


async def test_twenty_concurrent_messages_of_a_new_customer(tenant: TenantCtx) -> None:
    runtime = tenant.backend.runtime
    bodies = [
        inbound_body(tenant.channel_id, external_id="burst-new", text=f"message {i}")
        for i in range(20)
    ]
    responses = await asyncio.gather(
        *(tenant.client.post("/v1/inbound", json=b, headers=tenant.key_headers) for b in bodies)
    )
    assert [r.status_code for r in responses] == [201] * 20, [
        r.text for r in responses if r.status_code != 201
    ]
    results = [r.json() for r in responses]
    assert len({r["customer_id"] for r in results}) == 1
    assert len({r["conversation_id"] for r in results}) == 1
    tenant_id = uuid.UUID(tenant.id)
    assert await count_rows(runtime, Customer.id, Customer.tenant_id == tenant_id) == 1
    assert await count_rows(runtime, Conversation.id, Conversation.tenant_id == tenant_id) == 1
    conversation = await get_json(tenant, f"/v1/conversations/{results[0]['conversation_id']}")
    assert conversation["message_count"] == 20
    assert sorted(m["text"] for m in conversation["messages"]) == sorted(b["text"] for b in bodies)
    # Every message.received event got its own version of the conversation's stream.
    events = await count_rows(
        runtime,
        OutboxRecord.id,
        OutboxRecord.tenant_id == tenant_id,
        OutboxRecord.event_type == "message.received",
    )
    assert events == 20


async def test_threading_reopens_pending_and_starts_anew_after_resolve(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    first = await inbound(tenant, external_id="thread")
    conv = first["conversation_id"]
    until = "2099-01-01T00:00:00Z"
    expect(
        await tenant.client.patch(
            f"/v1/conversations/{conv}",
            json={"status": "snoozed", "snoozed_until": until},
            headers=h,
        ),
        200,
    )
    second = await inbound(tenant, external_id="thread", text="still waiting")
    assert second["conversation_id"] == conv
    reopened = await get_json(tenant, f"/v1/conversations/{conv}")
    assert reopened["status"] == "open"
    assert reopened["snoozed_until"] is None
    expect(
        await tenant.client.patch(
            f"/v1/conversations/{conv}", json={"status": "resolved"}, headers=h
        ),
        200,
    )
    third = await inbound(tenant, external_id="thread", text="new problem")
    assert third["conversation_id"] != conv
    assert third["customer_id"] == first["customer_id"]


async def test_identity_kinds_follow_the_channel(tenant: TenantCtx) -> None:
    whatsapp = (await create_channel(tenant, "whatsapp", "WA"))["id"]
    a = await inbound(tenant, external_id="+34 600 111 222", channel_id=whatsapp)
    b = await inbound(tenant, external_id="34600111222", channel_id=whatsapp)
    assert a["customer_id"] == b["customer_id"]
    assert a["conversation_id"] == b["conversation_id"]
    customer = await get_json(tenant, f"/v1/customers/{a['customer_id']}")
    assert customer["identities"] == [{"kind": "whatsapp", "value": "34600111222"}]
    found = await get_json(tenant, "/v1/customers", phone="+34 600-111-222")
    assert [c["id"] for c in found["items"]] == [a["customer_id"]]


async def test_email_only_customer_and_explicit_identity(tenant: TenantCtx) -> None:
    email = (await create_channel(tenant, "email", "Mail"))["id"]
    body = {
        "channel_id": email,
        "customer": {"email": "Zoe@Example.test"},
        "text": "hello",
        "subject": "Invoice copy",
        "provider_message_id": "<m1@example.test>",
    }
    by_email = expect(
        await tenant.client.post("/v1/inbound", json=body, headers=tenant.key_headers), 201
    )
    explicit = await inbound(
        tenant,
        channel_id=email,
        external_id="ignored",
        customer={"identity": {"kind": "email", "value": "zoe@EXAMPLE.test"}},
    )
    assert explicit["customer_id"] == by_email["customer_id"]
    assert (await get_json(tenant, f"/v1/conversations/{by_email['conversation_id']}"))[
        "subject"
    ] == "Invoice copy"


async def test_disabled_channel_refuses_messages(tenant: TenantCtx) -> None:
    expect(
        await tenant.client.patch(
            f"/v1/channels/{tenant.channel_id}",
            json={"is_active": False},
            headers=tenant.key_headers,
        ),
        200,
    )
    body = inbound_body(tenant.channel_id, external_id="late", text="anyone?")
    expect_error(
        await tenant.client.post("/v1/inbound", json=body, headers=tenant.key_headers),
        409,
        "channel_disabled",
    )


async def test_channel_secrets_are_never_shown(tenant: TenantCtx) -> None:
    channel = await get_json(tenant, f"/v1/channels/{tenant.channel_id}")
    assert channel["config"] == {"api_token": "***"}
    # Sending the marker back keeps the stored secret; renaming works alongside.
    patched = expect(
        await tenant.client.patch(
            f"/v1/channels/{tenant.channel_id}",
            json={"name": "Renamed", "config": {"api_token": "***", "region": "eu"}},
            headers=tenant.key_headers,
        ),
        200,
    )
    assert patched["config"] == {"api_token": "***", "region": "eu"}
    assert patched["name"] == "Renamed"
    from core.domain.channels import Channel

    async with tenant.backend.runtime.sessions() as session:
        stored = await session.get(Channel, uuid.UUID(tenant.channel_id))
        assert stored is not None
        assert stored.config["api_token"] == "s3cret"
