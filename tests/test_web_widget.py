"""The web chat channel: config, visitor tokens, the REST endpoints, origins, limits and
isolation. The WebSocket is in test_web_widget_socket.py; the browser drives the real
widget in test_web_widget_browser.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors.web import token as tokens
from core.domain.conversations import Message
from tests.channel_helpers import reply, stored_count
from tests.factories import Backend, TenantCtx, expect, expect_error, get_json
from tests.widget_helpers import (
    SECRET,
    conversation_of,
    post_message,
    start_session,
    web_channel,
)


async def test_config_is_validated_and_the_secret_never_shown(tenant: TenantCtx) -> None:
    for broken in (
        {"allowed_origins": ["https://shop.example/path"]},
        {"allowed_origins": ["ftp://shop.example"]},
        {"color": "red"},
        {"visitor_token_secret": "short"},
        {"position": "top"},
        {"unknown": 1},
    ):
        response = await tenant.client.post(
            "/v1/channels",
            json={"type": "web", "name": "Web", "config": broken},
            headers=tenant.key_headers,
        )
        expect_error(response, 422, "invalid_channel_config")

    created = expect(
        await tenant.client.post(
            "/v1/channels",
            json={
                "type": "web",
                "name": "Web",
                "config": {"allowed_origins": ["HTTPS://Shop.Example:443/"], "title": "Help"},
            },
            headers=tenant.key_headers,
        ),
        201,
    )
    config = created["config"]
    assert config["visitor_token_secret"] == "***"
    assert config["allowed_origins"] == ["https://shop.example"]
    assert config["title"] == "Help"
    assert config["color"] == "#2563eb"
    shown = await get_json(tenant, f"/v1/channels/{created['id']}")
    assert shown["config"]["visitor_token_secret"] == "***"
    listed = await get_json(tenant, "/v1/channels")
    assert all(c["config"].get("visitor_token_secret") in (None, "***") for c in listed)


async def test_patching_with_the_masked_secret_keeps_visitors_signed_in(
    tenant: TenantCtx,
) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    shown = await get_json(tenant, f"/v1/channels/{channel_id}")
    patched = {**shown["config"], "title": "New title"}
    expect(
        await tenant.client.patch(
            f"/v1/channels/{channel_id}", json={"config": patched}, headers=tenant.key_headers
        ),
        200,
    )
    renewed = await start_session(tenant.client, channel_id, token=visitor.token)
    assert renewed.visitor_id == visitor.visitor_id
    # Left out, the secret is generated anew: every visitor starts over.
    fresh = {k: v for k, v in patched.items() if k != "visitor_token_secret"}
    expect(
        await tenant.client.patch(
            f"/v1/channels/{channel_id}", json={"config": fresh}, headers=tenant.key_headers
        ),
        200,
    )
    response = await tenant.client.post(
        f"/widget/{channel_id}/session", json={"token": visitor.token}
    )
    expect_error(response, 401, "invalid_visitor_token")


async def test_session_issues_and_renews_visitor_tokens(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant, title="Shop help", welcome_text="Hello there")
    first = expect(
        await tenant.client.post(
            f"/widget/{channel_id}/session", json={"name": "Ana", "email": "Ana@Example.com"}
        ),
        200,
    )
    assert first["config"] == {
        "title": "Shop help",
        "welcome_text": "Hello there",
        "color": "#2563eb",
        "position": "right",
    }
    assert "visitor_token_secret" not in str(first)
    claims = tokens.read(SECRET, uuid.UUID(channel_id), first["token"])
    assert (claims.id, claims.name, claims.email) == (
        first["visitor_id"],
        "Ana",
        "ana@example.com",
    )
    again = expect(
        await tenant.client.post(f"/widget/{channel_id}/session", json={"token": first["token"]}),
        200,
    )
    assert again["visitor_id"] == first["visitor_id"]
    assert tokens.read(SECRET, uuid.UUID(channel_id), again["token"]).name == "Ana"
    other = await start_session(tenant.client, channel_id)
    assert other.visitor_id != first["visitor_id"]


async def test_bad_tokens_are_refused(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    other_channel = await web_channel(tenant)  # the same secret: the audience tells them apart
    elsewhere = await start_session(tenant.client, other_channel)
    visitor = await start_session(tenant.client, channel_id)
    expired, _ = tokens.issue(
        SECRET, uuid.UUID(channel_id), tokens.Visitor(visitor.visitor_id), timedelta(hours=-1)
    )
    forged, _ = tokens.issue(
        "f" * 40, uuid.UUID(channel_id), tokens.Visitor(visitor.visitor_id), timedelta(hours=1)
    )
    cases = {
        "wrong_channel": elsewhere.token,
        "expired": expired,
        "invalid": forged,
    }
    for reason, token in cases.items():
        for response in (
            await tenant.client.post(f"/widget/{channel_id}/session", json={"token": token}),
            await tenant.client.get(
                f"/widget/{channel_id}/messages", headers={"Authorization": f"Bearer {token}"}
            ),
        ):
            error = expect_error(response, 401, "invalid_visitor_token")
            assert error["details"] == {"reason": reason}
    tampered = visitor.token[:-4] + ("AAAA" if not visitor.token.endswith("AAAA") else "BBBB")
    response = await tenant.client.get(
        f"/widget/{channel_id}/messages", headers={"Authorization": f"Bearer {tampered}"}
    )
    expect_error(response, 401, "invalid_visitor_token")
    response = await tenant.client.get(f"/widget/{channel_id}/messages")
    expect_error(response, 401, "missing_visitor_token")


async def test_bad_requests_get_a_reason(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    api_channel = tenant.channel_id
    client = tenant.client
    h = visitor.headers
    url = f"/widget/{channel_id}/messages"
    cases = [
        (await client.post(f"/widget/{uuid.uuid4()}/session", json={}), 404, "channel_not_found"),
        (await client.post(f"/widget/{api_channel}/session", json={}), 404, "channel_not_found"),
        (await client.post("/widget/not-a-uuid/session", json={}), 422, "validation_error"),
        (await client.post(f"/widget/{channel_id}/session", json={"x": 1}), 422, None),
        (
            await client.post(f"/widget/{channel_id}/session", json={"email": "nope"}),
            422,
            "validation_error",
        ),
        (
            await client.post(url, content=b"{", headers={**h, "Content-Type": "application/json"}),
            400,
            "malformed_json",
        ),
        (await client.post(url, json={"text": "hi"}, headers=h), 422, "validation_error"),
        (
            await client.post(url, json={"client_id": "x", "text": "hi"}, headers=h),
            422,
            "validation_error",
        ),
        (
            await client.post(url, json={"client_id": str(uuid.uuid4()), "text": "  "}, headers=h),
            422,
            "validation_error",
        ),
        (
            await client.post(
                url, json={"client_id": str(uuid.uuid4()), "text": "a\x00b"}, headers=h
            ),
            422,
            "validation_error",
        ),
        (
            await client.post(
                url, json={"client_id": str(uuid.uuid4()), "text": "x" * 4001}, headers=h
            ),
            422,
            "text_too_long",
        ),
        (await client.get(f"{url}?after=yesterday", headers=h), 422, "validation_error"),
        (
            await client.post(
                f"/widget/{channel_id}/receipts", json={"ids": ["a"], "status": "seen"}, headers=h
            ),
            422,
            "validation_error",
        ),
    ]
    for response, status, code in cases:
        expect_error(response, status, code)
    assert await stored_count(tenant, channel_id) == 0


async def test_disabled_channel_refuses_visitors(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    expect(
        await tenant.client.patch(
            f"/v1/channels/{channel_id}", json={"is_active": False}, headers=tenant.key_headers
        ),
        200,
    )
    expect_error(
        await tenant.client.post(f"/widget/{channel_id}/session", json={}), 409, "channel_disabled"
    )
    response = await tenant.client.post(
        f"/widget/{channel_id}/messages",
        json={"client_id": str(uuid.uuid4()), "text": "hello?"},
        headers=visitor.headers,
    )
    expect_error(response, 409, "channel_disabled")


async def test_origins_outside_the_allowed_list_are_refused(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant, allowed_origins=["https://shop.example"])
    ok = await tenant.client.post(
        f"/widget/{channel_id}/session", json={}, headers={"Origin": "https://shop.example"}
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "*"
    for origin in ("https://evil.example", "http://shop.example", "null"):
        response = await tenant.client.post(
            f"/widget/{channel_id}/session", json={}, headers={"Origin": origin}
        )
        error = expect_error(response, 403, "origin_not_allowed")
        assert error["details"] == {"origin": origin}
        # The widget can read the refusal: CORS headers are on errors too.
        assert response.headers["access-control-allow-origin"] == "*"
    # The API's own pages (the demo page) are always allowed.
    own = await tenant.client.post(
        f"/widget/{channel_id}/session", json={}, headers={"Origin": "http://relaydesk.test"}
    )
    assert own.status_code == 200


async def test_cors_preflight(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    response = await tenant.client.options(
        f"/widget/{channel_id}/messages",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert "POST" in response.headers["access-control-allow-methods"]
    # Only the widget's endpoints answer any origin.
    api = await tenant.client.get("/v1/channels", headers=tenant.key_headers)
    assert "access-control-allow-origin" not in api.headers


async def test_messages_go_through_the_inbound_path_once(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id, name="Ana", email="ana@example.com")
    client_id = str(uuid.uuid4())
    first = await post_message(tenant.client, visitor, "Where is my order 4412?", client_id)
    assert first["created"] is True
    assert first["message"]["id"] == client_id
    assert first["message"]["author"] == "visitor"
    again = await post_message(
        tenant.client, visitor, "Where is my order 4412?", client_id, status=200
    )
    assert again["created"] is False
    assert again["message"] == first["message"]
    assert await stored_count(tenant, channel_id) == 1

    conversation = await conversation_of(tenant, channel_id)
    [message] = conversation["messages"]
    assert message["text"] == "Where is my order 4412?"
    assert message["direction"] == "inbound"
    assert message["provider_message_id"] == f"{visitor.visitor_id}:{client_id}"
    customer = await get_json(tenant, f"/v1/customers/{conversation['customer_id']}")
    assert customer["name"] == "Ana"
    assert customer["email"] == "ana@example.com"
    assert {"kind": "web", "value": visitor.visitor_id} in [
        {"kind": i["kind"], "value": i["value"]} for i in customer["identities"]
    ]

    # Another visitor's message with the same client id is a message of their own.
    other = await start_session(tenant.client, channel_id)
    theirs = await post_message(tenant.client, other, "Hello", client_id)
    assert theirs["created"] is True
    assert await stored_count(tenant, channel_id) == 2


async def test_history_and_agent_replies_over_rest(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    empty = expect(
        await tenant.client.get(f"/widget/{channel_id}/messages", headers=visitor.headers), 200
    )
    assert empty["messages"] == []
    await post_message(tenant.client, visitor, "Hi, is anyone there?")
    page = expect(
        await tenant.client.get(f"/widget/{channel_id}/messages", headers=visitor.headers), 200
    )
    assert [m["text"] for m in page["messages"]] == ["Hi, is anyone there?"]
    cursor = page["cursor"]

    conversation = await conversation_of(tenant, channel_id)
    sent = expect(await reply(tenant, conversation["id"], {"text": "Yes! How can I help?"}), 201)
    assert sent["delivery_status"] == "sent"
    assert sent["provider_message_id"].startswith("agent:")

    polled = expect(
        await tenant.client.get(
            f"/widget/{channel_id}/messages", params={"after": cursor}, headers=visitor.headers
        ),
        200,
    )
    agent = [m for m in polled["messages"] if m["author"] == "agent"]
    assert agent == [
        {
            "id": sent["provider_message_id"],
            "author": "agent",
            "text": "Yes! How can I help?",
            "sent_at": agent[0]["sent_at"],
            "status": "sent",
        }
    ]

    # Receipts move the reply forward, never back.
    for status, updated in (("read", 1), ("delivered", 0), ("read", 0)):
        result = expect(
            await tenant.client.post(
                f"/widget/{channel_id}/receipts",
                json={"ids": [sent["provider_message_id"]], "status": status},
                headers=visitor.headers,
            ),
            200,
        )
        assert result == {"updated": updated}
    conversation = await conversation_of(tenant, channel_id)
    assert conversation["messages"][-1]["delivery_status"] == "read"


async def test_web_replies_are_text(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, visitor, "Can you send the invoice?")
    conversation = await conversation_of(tenant, channel_id)
    response = await reply(
        tenant,
        conversation["id"],
        {"text": "Here", "attachments": [{"type": "document", "url": "https://x.example/a.pdf"}]},
    )
    expect_error(response, 409, "unsupported_attachment")
    response = await reply(
        tenant, conversation["id"], {"template": {"name": "hello", "language": "en"}}
    )
    expect_error(response, 409, "unsupported_reply")
    assert await stored_count(tenant, channel_id) == 1


async def test_visitors_and_tenants_are_isolated(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    channel_id = await web_channel(tenant)
    theirs = await web_channel(other_tenant)
    ana = await start_session(tenant.client, channel_id)
    ben = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, ana, "Ana's private question")
    await post_message(tenant.client, ben, "Ben's question")

    page = expect(
        await tenant.client.get(f"/widget/{channel_id}/messages", headers=ben.headers), 200
    )
    assert [m["text"] for m in page["messages"]] == ["Ben's question"]
    # A token of one tenant's channel means nothing on another's (same secret even).
    response = await tenant.client.get(f"/widget/{theirs}/messages", headers=ana.headers)
    expect_error(response, 401, "invalid_visitor_token")
    # Their agents do not see our conversations.
    listed = await get_json(other_tenant, f"/v1/conversations?channel_id={channel_id}")
    assert listed["items"] == []
    # A receipt can only touch the visitor's own agent replies.
    conversation = await get_json(tenant, f"/v1/conversations?channel_id={channel_id}")
    ana_thread = next(c for c in conversation["items"] if c["subject"].startswith("Ana"))
    sent = expect(await reply(tenant, ana_thread["id"], {"text": "For Ana"}), 201)
    result = expect(
        await tenant.client.post(
            f"/widget/{channel_id}/receipts",
            json={"ids": [sent["provider_message_id"]], "status": "read"},
            headers=ben.headers,
        ),
        200,
    )
    assert result == {"updated": 0}


async def test_visitor_message_rate_limit(
    tenant: TenantCtx, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend.runtime.settings.widget, "messages_per_minute", 2)
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    await _fresh_window()
    await post_message(tenant.client, visitor, "one")
    await post_message(tenant.client, visitor, "two")
    response = await tenant.client.post(
        f"/widget/{channel_id}/messages",
        json={"client_id": str(uuid.uuid4()), "text": "three"},
        headers=visitor.headers,
    )
    expect_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0
    # Another visitor has their own allowance.
    other = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, other, "hello")


async def test_new_visitor_rate_limit_spares_renewals(
    tenant: TenantCtx, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend.runtime.settings.widget, "sessions_per_minute", 2)
    channel_id = await web_channel(tenant)
    await _fresh_window()
    first = await start_session(tenant.client, channel_id)
    await start_session(tenant.client, channel_id)
    response = await tenant.client.post(f"/widget/{channel_id}/session", json={})
    expect_error(response, 429, "rate_limited")
    for _ in range(3):
        renewed = await start_session(tenant.client, channel_id, token=first.token)
        assert renewed.visitor_id == first.visitor_id


async def test_script_and_demo_page(tenant: TenantCtx) -> None:
    script = await tenant.client.get("/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert "textContent" in script.text
    assert "innerHTML" not in script.text
    channel_id = await web_channel(tenant)
    page = await tenant.client.get(f"/widget/{channel_id}/demo")
    assert page.status_code == 200
    tag = (
        f'<script src="http://relaydesk.test/widget.js" data-channel="{channel_id}" async></script>'
    )
    assert page.text.count(tag) == 1
    missing = await tenant.client.get(f"/widget/{uuid.uuid4()}/demo")
    expect_error(missing, 404, "channel_not_found")


async def test_message_rows_carry_the_visitor_identity(tenant: TenantCtx) -> None:
    channel_id = await web_channel(tenant)
    visitor = await start_session(tenant.client, channel_id)
    await post_message(tenant.client, visitor, "Hello")
    async with tenant.backend.runtime.sessions() as session:
        row = (
            await session.execute(
                select(Message.meta, Message.provider_message_id).where(
                    Message.channel_id == uuid.UUID(channel_id)
                )
            )
        ).one()
    assert row.meta == {"source": "web_widget"}
    assert row.provider_message_id.startswith(visitor.visitor_id + ":")


async def _fresh_window(room: float = 3) -> None:
    # Limits count per wall-clock minute: start a burst where it cannot straddle two.
    left = 60 - time.time() % 60
    if left < room:
        await asyncio.sleep(left + 0.1)
