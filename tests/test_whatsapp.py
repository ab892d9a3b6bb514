"""WhatsApp Cloud API channel: config, webhook verification and signatures, every message
type into the inbound path, media into storage, statuses, and replies out through a
local Graph API (tests/fake_graph.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from core.domain.channels import Channel, EarlyStatus
from core.domain.conversations import Message
from tests.channel_helpers import (
    add_channel,
    delivered,
    last_inbound_ago,
    messages_of,
    post_signed,
    reply,
    reply_delivered,
    stored_count,
    worker_for,
)
from tests.factories import TenantCtx, count_rows, expect, expect_error, get_json
from tests.fake_graph import TOKEN, FakeGraph, signed, status, wa_message, webhook_body

SECRET = "app-secret-for-tests"


def wa_config(graph: FakeGraph, **changes: Any) -> dict[str, Any]:
    return {
        "phone_number_id": "1000000001",
        "waba_id": "2000000002",
        "access_token": TOKEN,
        "app_secret": SECRET,
        "verify_token": "verify-me",
        "graph_api_base_url": graph.base_url,
        **changes,
    }


async def wa_channel(t: TenantCtx, graph: FakeGraph) -> str:
    return await add_channel(t, "whatsapp", "WhatsApp", wa_config(graph))


async def post_webhook(t: TenantCtx, channel_id: str, body: dict[str, Any] | bytes) -> Any:
    return await post_signed(t, "whatsapp", channel_id, body, SECRET)


async def test_config_is_validated_and_secrets_never_shown(
    tenant: TenantCtx, graph: FakeGraph
) -> None:
    missing = {k: v for k, v in wa_config(graph).items() if k != "app_secret"}
    error = expect_error(
        await tenant.client.post(
            "/v1/channels",
            json={"type": "whatsapp", "name": "WA", "config": missing},
            headers=tenant.key_headers,
        ),
        422,
        "invalid_channel_config",
    )
    assert "app_secret" in error["message"]
    default = {k: v for k, v in wa_config(graph).items() if k != "graph_api_base_url"}
    created = expect(
        await tenant.client.post(
            "/v1/channels",
            json={"type": "whatsapp", "name": "WA", "config": default},
            headers=tenant.key_headers,
        ),
        201,
    )
    assert created["config"]["graph_api_base_url"].startswith("https://graph.facebook.com/")
    shown = await get_json(tenant, f"/v1/channels/{created['id']}")
    for secret in ("access_token", "app_secret", "verify_token"):
        assert shown["config"][secret] == "***"
    assert shown["config"]["phone_number_id"] == "1000000001"
    assert TOKEN not in str(await get_json(tenant, "/v1/channels"))


async def test_subscription_verification(tenant: TenantCtx, graph: FakeGraph) -> None:
    channel_id = await wa_channel(tenant, graph)
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "verify-me",
        "hub.challenge": "1158201444",
    }
    ok = await tenant.client.get(f"/webhooks/whatsapp/{channel_id}", params=params)
    assert ok.status_code == 200, ok.text
    assert ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = await tenant.client.get(
        f"/webhooks/whatsapp/{channel_id}", params={**params, "hub.verify_token": "nope"}
    )
    expect_error(wrong, 403)
    unknown = await tenant.client.get(f"/webhooks/whatsapp/{uuid.uuid4()}", params=params)
    expect_error(unknown, 404)


async def test_bad_signature_is_401_and_stores_nothing(tenant: TenantCtx, graph: FakeGraph) -> None:
    channel_id = await wa_channel(tenant, graph)
    body = webhook_body([wa_message("text", {"body": "hi"}, "15551230001")], {"15551230001": "A"})
    raw, headers = signed(body, "another-secret")
    url = f"/webhooks/whatsapp/{channel_id}"
    expect_error(await tenant.client.post(url, content=raw, headers=headers), 401, "bad_signature")
    expect_error(
        await tenant.client.post(url, content=raw, headers={"Content-Type": "application/json"}),
        401,
        "bad_signature",
    )
    # A valid signature of another body does not cover this one.
    _, other = signed(b'{"object": "x"}', SECRET)
    expect_error(await tenant.client.post(url, content=raw, headers=other), 401)
    assert await stored_count(tenant, channel_id) == 0


async def test_a_rotated_app_secret_applies_at_once_here_and_within_the_cache_time_elsewhere(
    tenant: TenantCtx, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Webhook channels and their config are reused for `auth_cache_seconds`
    (api/services/channel_cache.py): a PATCH through this process applies to the next
    body; a change written by another process applies once the entry expires."""
    monkeypatch.setattr(tenant.backend.runtime.settings.api, "auth_cache_seconds", 0.5)
    channel_id = await wa_channel(tenant, graph)

    def body(n: int) -> dict[str, Any]:
        message = wa_message("text", {"body": f"hi {n}"}, "15551239001")
        return webhook_body([message], {"15551239001": "Rot"})

    expect(await post_signed(tenant, "whatsapp", channel_id, body(1), SECRET), 200)
    expect(
        await tenant.client.patch(
            f"/v1/channels/{channel_id}",
            json={"config": {**wa_config(graph), "app_secret": "rotated-secret"}},
            headers=tenant.key_headers,
        ),
        200,
    )
    expect_error(await post_signed(tenant, "whatsapp", channel_id, body(2), SECRET), 401)
    expect(await post_signed(tenant, "whatsapp", channel_id, body(3), "rotated-secret"), 200)

    async with tenant.backend.runtime.sessions() as session:
        # Written straight to the database, as another process would: no cache is cleared.
        await session.execute(
            update(Channel)
            .where(Channel.id == uuid.UUID(channel_id))
            .values(config={**wa_config(graph), "app_secret": "third-secret"})
        )
        await session.commit()
    expect(await post_signed(tenant, "whatsapp", channel_id, body(4), "rotated-secret"), 200)
    await asyncio.sleep(0.6)
    expect_error(await post_signed(tenant, "whatsapp", channel_id, body(5), "rotated-secret"), 401)
    expect(await post_signed(tenant, "whatsapp", channel_id, body(6), "third-secret"), 200)
    assert await stored_count(tenant, channel_id) == 4


async def test_malformed_bodies_are_400_and_store_nothing(
    tenant: TenantCtx, graph: FakeGraph
) -> None:
    channel_id = await wa_channel(tenant, graph)
    good = wa_message("text", {"body": "first, valid"}, "15551230002")
    bad_text = wa_message("text", {}, "15551230002")
    for body in (
        b"{not json",
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        # One broken message refuses the whole body: the valid one is not stored alone.
        webhook_body([good, bad_text], {"15551230002": "B"}),
        webhook_body([{**good, "timestamp": "yesterday"}]),
        # A text the inbound path refuses (over its length limit) is malformed too.
        webhook_body([good, wa_message("text", {"body": "x" * 70_000}, "15551230002")]),
    ):
        expect_error(await post_webhook(tenant, channel_id, body), 400, "malformed_webhook")
    assert await stored_count(tenant, channel_id) == 0
    unknown = await post_webhook(tenant, str(uuid.uuid4()), webhook_body([good]))
    expect_error(unknown, 404)


def every_type(wa_a: str, wa_b: str) -> list[dict[str, Any]]:
    return [
        wa_message("text", {"body": "Hello, my order is late"}, wa_a),
        wa_message(
            "image",
            {"caption": "the box", "mime_type": "image/jpeg", "sha256": "x", "id": "media-img"},
            wa_a,
        ),
        wa_message("audio", {"mime_type": "audio/ogg", "id": "media-missing", "voice": True}, wa_a),
        wa_message("video", {"mime_type": "video/mp4", "id": "media-vid"}, wa_a),
        wa_message(
            "document",
            {"filename": "invoice.pdf", "mime_type": "application/pdf", "id": "media-doc"},
            wa_a,
        ),
        wa_message(
            "sticker", {"mime_type": "image/webp", "id": "media-stk", "animated": False}, wa_a
        ),
        wa_message(
            "location",
            {
                "latitude": 40.4168,
                "longitude": -3.7038,
                "name": "Puerta del Sol",
                "address": "Madrid",
            },
            wa_a,
        ),
        wa_message(
            "contacts",
            [
                {
                    "name": {"formatted_name": "Jane Roe", "first_name": "Jane"},
                    "phones": [{"phone": "+1 555"}],
                }
            ],
            wa_a,
        ),
        wa_message(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Yes, refund"}},
            wa_b,
        ),
        wa_message(
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "opt-2", "title": "Shipping", "description": "Where is it"},
            },
            wa_b,
        ),
        wa_message("button", {"text": "Track order", "payload": "TRACK"}, wa_b),
        wa_message("reaction", {"message_id": "wamid.earlier", "emoji": "\U0001f44d"}, wa_b),
        wa_message(
            "unsupported",
            None,
            wa_b,
            errors=[{"code": 131051, "title": "Message type unknown"}],
        ),
        wa_message("order", {"catalog_id": "123", "product_items": []}, wa_b),
    ]


async def test_every_message_type_several_per_body_and_duplicates_once(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    graph.media.update(
        {
            "media-img": (b"\xff\xd8jpeg-bytes", "image/jpeg"),
            "media-vid": (b"mp4-bytes", "video/mp4"),
            "media-doc": (b"%PDF-1.7 invoice", "application/pdf"),
            "media-stk": (b"RIFFwebp", "image/webp"),
        }
    )
    channel_id = await wa_channel(tenant, graph)
    wa_a, wa_b = "15551239001", "15551239002"
    sent = every_type(wa_a, wa_b)
    body = webhook_body(sent, {wa_a: "Kerry Fisher", wa_b: "Lee Chan"})
    result = expect(await post_webhook(tenant, channel_id, body), 200)
    assert result["stored"] == len(sent)
    assert result["duplicates"] == 0
    assert await stored_count(tenant, channel_id) == len(sent)

    runtime = tenant.backend.runtime
    by_id: dict[str, dict[str, Any]] = {}
    customers: dict[str, str] = {}
    for convo in (await get_json(tenant, "/v1/conversations", channel_id=channel_id))["items"]:
        customer = await get_json(tenant, f"/v1/customers/{convo['customer_id']}")
        customers[customer["identities"][0]["value"]] = customer["name"]
        for message in await messages_of(tenant, convo["id"]):
            by_id[message["provider_message_id"]] = message
    assert customers == {wa_a: "Kerry Fisher", wa_b: "Lee Chan"}
    kinds = [by_id[m["id"]]["content_type"] for m in sent]
    assert kinds == [
        "text", "image", "audio", "video", "document", "sticker", "location", "contacts",
        "interactive", "interactive", "interactive", "reaction", "unsupported", "unsupported",
    ]  # fmt: skip
    texts = [by_id[m["id"]]["text"] for m in sent]
    assert texts[0] == "Hello, my order is late"
    assert texts[1] == "the box"
    assert texts[6:12] == [
        "Puerta del Sol", "Jane Roe", "Yes, refund", "Shipping", "Track order", "\U0001f44d"
    ]  # fmt: skip

    image = by_id[sent[1]["id"]]["attachments"][0]
    assert image["status"] == "stored"
    assert image["media_id"] == "media-img"
    assert await runtime.attachments.get(image["storage_key"]) == b"\xff\xd8jpeg-bytes"
    document = by_id[sent[4]["id"]]["attachments"][0]
    assert (document["filename"], document["mime_type"]) == ("invoice.pdf", "application/pdf")
    assert await runtime.attachments.get(document["storage_key"]) == b"%PDF-1.7 invoice"
    # The audio's media is gone from Meta: the message stays, its attachment unavailable.
    audio = by_id[sent[2]["id"]]["attachments"][0]
    assert audio["status"] == "unavailable"
    assert "storage_key" not in audio
    # Media fetched with the channel's token: a lookup, then the download.
    downloads = [c for c in graph.calls if c.path.startswith("/download/")]
    assert len(downloads) == 4
    assert all(c.authorization == f"Bearer {TOKEN}" for c in graph.calls)

    async with runtime.sessions() as session:
        unknown = await session.get(Message, uuid.UUID(by_id[sent[13]["id"]]["id"]))
        assert unknown is not None
        assert unknown.meta["whatsapp_type"] == "order"
        assert unknown.meta["raw"]["order"]["catalog_id"] == "123"
        reaction = await session.get(Message, uuid.UUID(by_id[sent[11]["id"]]["id"]))
        assert reaction is not None
        assert reaction.meta["reaction"]["message_id"] == "wamid.earlier"

    calls_before = len(graph.calls)
    again = expect(await post_webhook(tenant, channel_id, body), 200)
    assert (again["stored"], again["duplicates"]) == (0, len(sent))
    assert await stored_count(tenant, channel_id) == len(sent)
    assert len(graph.calls) == calls_before  # no media fetched again


async def inbound_thread(t: TenantCtx, channel_id: str, wa_id: str) -> str:
    body = webhook_body([wa_message("text", {"body": "I need help"}, wa_id)], {wa_id: "Ana"})
    expect(await post_webhook(t, channel_id, body), 200)
    items = (await get_json(t, "/v1/conversations", channel_id=channel_id))["items"]
    return str(items[0]["id"])


async def current(t: TenantCtx, message: dict[str, Any]) -> dict[str, Any]:
    """A message as the API shows it now."""
    found = [
        m for m in await messages_of(t, message["conversation_id"]) if m["id"] == message["id"]
    ]
    return found[0]


async def test_reply_is_sent_and_statuses_update_it(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15551234567")
    stored = expect(await reply(tenant, conversation_id, {"text": "On it!"}), 201)
    assert (stored["delivery_status"], stored["delivery_attempts"]) == ("queued", 0)
    assert stored["next_attempt_at"] is not None
    assert graph.sends() == []  # the request only stores it: the worker sends
    message = await delivered(tenant, stored)
    assert (message["delivery_status"], message["delivery_attempts"]) == ("sent", 1)
    assert message["next_attempt_at"] is None
    assert message["provider_message_id"].startswith("wamid.")
    assert graph.sends() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "15551234567",
            "type": "text",
            "text": {"body": "On it!", "preview_url": False},
        }
    ]
    assert graph.calls[-1].path == "/v21.0/1000000001/messages"
    wamid = message["provider_message_id"]

    for state, expected in (("delivered", "delivered"), ("read", "read"), ("delivered", "read")):
        body = webhook_body(statuses=[status(wamid, state, "15551234567")])
        assert expect(await post_webhook(tenant, channel_id, body), 200)["statuses"] == 1
        assert (await current(tenant, message))["delivery_status"] == expected

    second = await reply_delivered(tenant, conversation_id, {"text": "Anything else?"})
    failed = status(
        second["provider_message_id"],
        "failed",
        "15551234567",
        errors=[
            {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}
        ],
    )
    expect(await post_webhook(tenant, channel_id, webhook_body(statuses=[failed])), 200)
    shown = next(m for m in await messages_of(tenant, conversation_id) if m["id"] == second["id"])
    assert shown["delivery_status"] == "failed"
    assert shown["delivery_error"]["code"] == 131047
    unmatched = webhook_body(statuses=[status("wamid.unknown", "read", "15551234567")])
    assert expect(await post_webhook(tenant, channel_id, unmatched), 200)["unmatched_statuses"] == 1


async def test_statuses_posted_before_the_worker_records_the_id_are_applied_then(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    """Meta may post a reply's `sent`/`delivered` webhook before the delivery worker has
    written the reply's wamid: held, then applied when the worker records it."""
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15551234599")
    queued = expect(await reply(tenant, conversation_id, {"text": "Quick one"}), 201)
    assert queued["delivery_status"] == "queued"
    graph.wamids.append("wamid.early-1")
    early = [status("wamid.early-1", s, "15551234599") for s in ("sent", "delivered")]
    held = expect(await post_webhook(tenant, channel_id, webhook_body(statuses=early)), 200)
    assert held["unmatched_statuses"] == 2
    shown = await delivered(tenant, queued)
    assert shown["provider_message_id"] == "wamid.early-1"
    assert shown["delivery_status"] == "delivered"
    # Applied once: the hold is empty, and later statuses move it on as usual.
    read = webhook_body(statuses=[status("wamid.early-1", "read", "15551234599")])
    assert expect(await post_webhook(tenant, channel_id, read), 200)["statuses"] == 1
    assert (await current(tenant, queued))["delivery_status"] == "read"
    left = EarlyStatus.provider_message_id == "wamid.early-1"
    assert await count_rows(tenant.backend.runtime, EarlyStatus.channel_id, left) == 0


async def test_outside_the_24_hour_window_only_templates(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15551234568")
    await last_inbound_ago(tenant, conversation_id, timedelta(hours=25))
    before = len(await messages_of(tenant, conversation_id))
    error = expect_error(
        await reply(tenant, conversation_id, {"text": "Still there?"}),
        409,
        "outside_service_window",
    )
    assert "template" in error["message"]
    assert len(await messages_of(tenant, conversation_id)) == before
    assert graph.sends() == []

    template = {"name": "order_update", "language": "es", "parameters": ["Ana", "1234"]}
    sent = await reply_delivered(tenant, conversation_id, {"template": template})
    assert sent["delivery_status"] == "sent"
    assert graph.sends()[0]["type"] == "template"
    assert graph.sends()[0]["template"] == {
        "name": "order_update",
        "language": {"code": "es"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "1234"}],
            }
        ],
    }


async def test_interactive_and_media_replies(tenant: TenantCtx, fresh_graph: FakeGraph) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15551234569")
    interactive = {
        "type": "button",
        "body": {"text": "Was this solved?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]},
    }
    await reply_delivered(tenant, conversation_id, {"interactive": interactive})
    media = {
        "text": "Your label",
        "attachments": [
            {"type": "document", "url": "https://files.example/l.pdf", "filename": "l.pdf"}
        ],
    }
    await reply_delivered(tenant, conversation_id, media)
    first, second = graph.sends()
    assert first["interactive"] == interactive
    assert second["document"] == {
        "link": "https://files.example/l.pdf",
        "caption": "Your label",
        "filename": "l.pdf",
    }
    expect_error(
        await reply(tenant, conversation_id, {"attachments": [{"type": "image"}]}),
        409,
        "unsupported_attachment",
    )
    expect_error(
        await reply(tenant, conversation_id, {"text": "Hi", "human_agent": True}),
        409,
        "unsupported_option",
    )


async def test_429_and_5xx_are_retried_by_the_worker_then_sent(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15551234570")
    graph.script.extend(
        [
            (429, {"error": {"message": "Too many messages", "code": 130429}}),
            (500, {"error": {"message": "Service unavailable", "code": 2}}),
        ]
    )
    stored = expect(await reply(tenant, conversation_id, {"text": "Retry me"}), 201)
    worker = worker_for(tenant, channel_id)
    assert await worker.drain() == 1  # the first attempt; the retry is not due yet
    shown = await current(tenant, stored)
    assert (shown["delivery_status"], shown["delivery_attempts"]) == ("queued", 1)
    assert shown["delivery_error"]["code"] == 130429
    assert shown["delivery_error"]["retrying"] is True
    assert shown["next_attempt_at"] > shown["created_at"]
    assert await worker.drain(wait_s=10) == 2
    message = await current(tenant, stored)
    assert (message["delivery_status"], message["delivery_attempts"]) == ("sent", 3)
    assert message["delivery_error"] is None
    assert len(graph.sends()) == 3
    assert graph.sends()[0] == graph.sends()[2]  # the same body each attempt
    assert (worker.sent, worker.retried, worker.failed) == (1, 2, 0)


async def test_permanent_and_exhausted_errors_show_on_the_message(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15551234571")
    graph.script.append(
        (400, {"error": {"message": "(#131026) Message undeliverable", "code": 131026}})
    )
    shown = await reply_delivered(tenant, conversation_id, {"text": "Hello?"})
    assert len(graph.sends()) == 1  # a 4xx is not retried
    assert (shown["delivery_status"], shown["delivery_attempts"]) == ("failed", 1)
    assert shown["delivery_error"]["code"] == 131026
    assert shown["delivery_error"]["status"] == 400
    assert shown["delivery_error"]["provider"] == "whatsapp"
    assert "undeliverable" in shown["delivery_error"]["message"]

    graph.calls.clear()
    graph.script.extend([(429, {"error": {"message": "Too many", "code": 130429}})] * 3)
    exhausted = await reply_delivered(tenant, conversation_id, {"text": "Again"})
    assert len(graph.sends()) == 3  # bounded by delivery_max_attempts (3 in the test)
    assert (exhausted["delivery_status"], exhausted["delivery_attempts"]) == ("failed", 3)
    assert exhausted["delivery_error"]["code"] == 130429
    assert "retrying" not in exhausted["delivery_error"]


async def test_concurrent_bodies_of_one_customer_are_all_stored(
    tenant: TenantCtx, graph: FakeGraph
) -> None:
    """Several bodies of several messages each, from one customer, arriving at once: each
    message commits on its own, so the event versions of the shared conversation must be
    read afresh for every message (a cached version made some of them fail before)."""
    import asyncio

    channel_id = await wa_channel(tenant, graph)
    wa_id = "15551239999"
    bodies = [
        webhook_body(
            [wa_message("text", {"body": f"burst {b}.{m}"}, wa_id) for m in range(3)],
            {wa_id: "Burst"},
        )
        for b in range(6)
    ]
    answers = await asyncio.gather(*(post_webhook(tenant, channel_id, body) for body in bodies))
    assert [a.status_code for a in answers] == [200] * len(bodies), [a.text for a in answers]
    assert await stored_count(tenant, channel_id) == 18
