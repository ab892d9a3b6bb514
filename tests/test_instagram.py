"""Instagram messaging channel: config, webhook verification and signatures, every event
kind into the inbound path (echoes left out), attachments into storage, read receipts,
and replies out through the Send API of a local Graph API (tests/fake_graph.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from core.domain.conversations import Message
from tests.channel_helpers import (
    add_channel,
    last_inbound_ago,
    messages_of,
    post_signed,
    reply,
    reply_delivered,
    stored_count,
    upload,
)
from tests.factories import TenantCtx, expect, expect_error, get_json
from tests.fake_graph import (
    IG_ACCOUNT,
    TOKEN,
    FakeGraph,
    ig_body,
    ig_event,
    ig_message,
    signed,
)

SECRET = "ig-app-secret-for-tests"


def ig_config(graph: FakeGraph, **changes: Any) -> dict[str, Any]:
    return {
        "ig_user_id": IG_ACCOUNT,
        "access_token": TOKEN,
        "app_secret": SECRET,
        "verify_token": "ig-verify-me",
        "graph_api_base_url": graph.base_url,
        **changes,
    }


async def ig_channel(t: TenantCtx, graph: FakeGraph) -> str:
    return await add_channel(t, "instagram", "Instagram", ig_config(graph))


async def post_webhook(t: TenantCtx, channel_id: str, body: dict[str, Any] | bytes) -> Any:
    return await post_signed(t, "instagram", channel_id, body, SECRET)


async def test_config_is_validated_and_secrets_never_shown(
    tenant: TenantCtx, graph: FakeGraph
) -> None:
    for broken in (
        {k: v for k, v in ig_config(graph).items() if k != "ig_user_id"},
        ig_config(graph, ig_user_id="not-a-graph-id"),
        ig_config(graph, phone_number_id="1"),
    ):
        expect_error(
            await tenant.client.post(
                "/v1/channels",
                json={"type": "instagram", "name": "IG", "config": broken},
                headers=tenant.key_headers,
            ),
            422,
            "invalid_channel_config",
        )
    channel_id = await ig_channel(tenant, graph)
    shown = await get_json(tenant, f"/v1/channels/{channel_id}")
    for secret in ("access_token", "app_secret", "verify_token"):
        assert shown["config"][secret] == "***"
    assert shown["config"]["ig_user_id"] == IG_ACCOUNT
    assert TOKEN not in str(await get_json(tenant, "/v1/channels"))


async def test_subscription_verification(tenant: TenantCtx, graph: FakeGraph) -> None:
    channel_id = await ig_channel(tenant, graph)
    params = {"hub.mode": "subscribe", "hub.verify_token": "ig-verify-me", "hub.challenge": "77"}
    ok = await tenant.client.get(f"/webhooks/instagram/{channel_id}", params=params)
    assert (ok.status_code, ok.text) == (200, "77")
    wrong = {**params, "hub.verify_token": "nope"}
    expect_error(await tenant.client.get(f"/webhooks/instagram/{channel_id}", params=wrong), 403)
    # A WhatsApp route does not answer for an Instagram channel, nor the other way round.
    expect_error(await tenant.client.get(f"/webhooks/whatsapp/{channel_id}", params=params), 404)


async def test_bad_signature_and_malformed_bodies_store_nothing(
    tenant: TenantCtx, graph: FakeGraph
) -> None:
    channel_id = await ig_channel(tenant, graph)
    url = f"/webhooks/instagram/{channel_id}"
    body = ig_body([ig_message("9001", text="hi")])
    raw, headers = signed(body, "another-secret")
    expect_error(await tenant.client.post(url, content=raw, headers=headers), 401, "bad_signature")
    unsigned = {"Content-Type": "application/json"}
    expect_error(await tenant.client.post(url, content=raw, headers=unsigned), 401)
    good = ig_message("9001", text="valid")
    for bad in (
        b"[not json",
        {"object": "whatsapp_business_account", "entry": []},
        {"object": "instagram"},
        # One broken event refuses the whole body: the valid one is not stored alone.
        ig_body([good, ig_message("9001", text="no timestamp") | {"timestamp": "soon"}]),
        ig_body([good, {"recipient": {"id": IG_ACCOUNT}, "timestamp": 1, "message": {}}]),
        ig_body([ig_event("9001", message={"text": "no mid"})]),
        # A text the inbound path refuses (over its length limit) is malformed too.
        ig_body([good, ig_message("9001", text="x" * 70_000)]),
    ):
        expect_error(await post_webhook(tenant, channel_id, bad), 400, "malformed_webhook")
    assert await stored_count(tenant, channel_id) == 0


def attachment(kind: str, url: str) -> dict[str, Any]:
    return {"type": kind, "payload": {"url": url}}


def every_kind(customer: str, graph: FakeGraph) -> list[dict[str, Any]]:
    return [
        ig_message(customer, text="Hi, where is my parcel?"),
        ig_message(customer, attachments=[attachment("image", graph.cdn_url("p.jpg"))]),
        ig_message(customer, attachments=[attachment("video", graph.cdn_url("gone.mp4"))]),
        ig_message(
            customer,
            attachments=[attachment("story_mention", "https://lookaside.fbsbx.com/story/1")],
        ),
        ig_message(
            customer,
            text="Love this one",
            reply_to={"story": {"url": "https://lookaside.fbsbx.com/story/2", "id": "1799"}},
        ),
        ig_event(
            customer,
            reaction={"mid": "aWdf.ours", "action": "react", "reaction": "love", "emoji": "\u2764"},
        ),
        ig_event(
            customer, postback={"title": "Track my order", "payload": "TRACK", "mid": "aWdf.pb1"}
        ),
        ig_event(customer, referral={"ref": "ad-42", "source": "ADS", "type": "OPEN_THREAD"}),
    ]


async def test_every_event_kind_echoes_left_out_and_duplicates_once(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    graph.cdn["p.jpg"] = (b"\xff\xd8ig-photo", "image/jpeg")
    channel_id = await ig_channel(tenant, graph)
    customer = "17840000000000042"
    events = every_kind(customer, graph)
    echo = ig_event(
        IG_ACCOUNT, customer, message={"mid": "aWdf.echo", "text": "sent by us", "is_echo": True}
    )
    body = ig_body([*events, echo])
    result = expect(await post_webhook(tenant, channel_id, body), 200)
    assert (result["stored"], result["duplicates"], result["echoes"]) == (len(events), 0, 1)
    assert await stored_count(tenant, channel_id) == len(events)

    conversations = (await get_json(tenant, "/v1/conversations", channel_id=channel_id))["items"]
    assert len(conversations) == 1  # the echo opened no thread for our own account
    customer_shown = await get_json(tenant, f"/v1/customers/{conversations[0]['customer_id']}")
    identity = customer_shown["identities"][0]
    assert (identity["kind"], identity["value"]) == ("instagram", customer)
    stored = await messages_of(tenant, conversations[0]["id"])
    assert all(m["direction"] == "inbound" for m in stored)
    assert "sent by us" not in [m["text"] for m in stored]
    kinds = [m["content_type"] for m in stored]
    assert kinds == [
        "text", "image", "video", "text", "text", "reaction", "interactive", "unsupported"
    ]  # fmt: skip
    text, image, video, mention, story_reply, reaction, postback, referral = stored
    assert text["text"] == "Hi, where is my parcel?"
    assert text["provider_message_id"] == events[0]["message"]["mid"]
    photo = image["attachments"][0]
    assert (photo["status"], photo["mime_type"]) == ("stored", "image/jpeg")
    runtime = tenant.backend.runtime
    assert await runtime.attachments.get(photo["storage_key"]) == b"\xff\xd8ig-photo"
    # The CDN link expired: the message stays, its attachment unavailable.
    assert video["attachments"][0]["status"] == "unavailable"
    assert reaction["text"] == "\u2764"
    assert postback["text"] == "Track my order"
    assert postback["provider_message_id"] == "aWdf.pb1"
    cdn_calls = [c for c in graph.calls if c.path.startswith("/cdn/")]
    assert len(cdn_calls) == 2
    assert all(c.authorization is None for c in cdn_calls)  # no token to a CDN

    async with runtime.sessions() as session:

        def meta(message: dict[str, Any]) -> Any:
            return session.get(Message, uuid.UUID(message["id"]))

        found = await meta(mention)
        assert found is not None
        assert found.meta["story"] == {
            "kind": "mention",
            "url": "https://lookaside.fbsbx.com/story/1",
        }
        found = await meta(story_reply)
        assert found is not None
        assert found.meta["story"]["url"] == "https://lookaside.fbsbx.com/story/2"
        assert found.meta["story"]["kind"] == "reply"
        found = await meta(reaction)
        assert found is not None
        assert found.meta["reaction"]["mid"] == "aWdf.ours"
        found = await meta(referral)
        assert found is not None
        assert found.meta["instagram_event"] == "referral"
        assert found.meta["raw"]["referral"]["ref"] == "ad-42"

    calls_before = len(graph.calls)
    again = expect(await post_webhook(tenant, channel_id, body), 200)
    assert (again["stored"], again["duplicates"]) == (0, len(events))
    assert await stored_count(tenant, channel_id) == len(events)
    assert len(graph.calls) == calls_before  # nothing fetched again


async def inbound_thread(t: TenantCtx, channel_id: str, igsid: str) -> str:
    body = ig_body([ig_message(igsid, text="I need help")])
    expect(await post_webhook(t, channel_id, body), 200)
    items = (await get_json(t, "/v1/conversations", channel_id=channel_id))["items"]
    return str(items[0]["id"])


async def test_reply_is_sent_and_read_receipts_mark_it_read(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await ig_channel(tenant, graph)
    igsid = "17840000000000101"
    conversation_id = await inbound_thread(tenant, channel_id, igsid)
    first = await reply_delivered(tenant, conversation_id, {"text": "On it!"})
    assert first["delivery_status"] == "sent"
    assert graph.calls[-1].path == f"/v21.0/{IG_ACCOUNT}/messages"
    media = {"attachments": [{"type": "image", "url": "https://files.example/label.png"}]}
    second = await reply_delivered(tenant, conversation_id, media)
    assert graph.sends() == [
        {"recipient": {"id": igsid}, "message": {"text": "On it!"}},
        {
            "recipient": {"id": igsid},
            "message": {
                "attachment": {
                    "type": "image",
                    "payload": {"url": "https://files.example/label.png"},
                }
            },
        },
    ]
    # Meta echoes our sends back: recognized, not stored.
    echo = ig_event(
        IG_ACCOUNT,
        igsid,
        message={"mid": second["provider_message_id"], "text": "x", "is_echo": True},
    )
    read = ig_event(igsid, read={"mid": second["provider_message_id"]})
    result = expect(await post_webhook(tenant, channel_id, ig_body([echo, read])), 200)
    assert (result["echoes"], result["reads"], result["stored"]) == (1, 1, 0)
    shown = {m["id"]: m for m in await messages_of(tenant, conversation_id)}
    assert shown[first["id"]]["delivery_status"] == "read"  # read up to the second
    assert shown[second["id"]]["delivery_status"] == "read"
    unknown = ig_body([ig_event(igsid, read={"mid": "aWdf.unknown"})])
    assert expect(await post_webhook(tenant, channel_id, unknown), 200)["unmatched_reads"] == 1
    expect_error(
        await reply(tenant, conversation_id, {"text": "caption", **media}),
        409,
        "unsupported_attachment",
    )
    expect_error(
        await reply(tenant, conversation_id, {"template": {"name": "t"}}), 409, "unsupported_reply"
    )
    # The Send API takes media by URL only: a stored blob cannot be uploaded to it.
    blob = await upload(tenant, b"\x89PNG ig", "image/png")
    stored = {"attachments": [{"key": blob.key, "content_type": "image/png"}]}
    error = expect_error(
        await reply(tenant, conversation_id, stored), 409, "unsupported_attachment"
    )
    assert "url" in error["message"]


async def test_messaging_window_and_human_agent_tag(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await ig_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "17840000000000102")
    await last_inbound_ago(tenant, conversation_id, timedelta(hours=25))
    before = len(await messages_of(tenant, conversation_id))
    error = expect_error(
        await reply(tenant, conversation_id, {"text": "Still there?"}),
        409,
        "outside_service_window",
    )
    assert "human_agent" in error["message"]
    assert len(await messages_of(tenant, conversation_id)) == before
    assert graph.sends() == []

    tagged = {"text": "A person here: your refund is done", "human_agent": True}
    sent = await reply_delivered(tenant, conversation_id, tagged)
    assert sent["delivery_status"] == "sent"
    assert graph.sends()[0]["messaging_type"] == "MESSAGE_TAG"
    assert graph.sends()[0]["tag"] == "HUMAN_AGENT"

    await last_inbound_ago(tenant, conversation_id, timedelta(days=8))
    expect_error(await reply(tenant, conversation_id, tagged), 409, "outside_service_window")
    assert len(graph.sends()) == 1


async def test_429_and_5xx_retried_then_permanent_error_shown(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await ig_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "17840000000000103")
    graph.script.extend(
        [
            (
                429,
                {"error": {"message": "Calls to this api have exceeded the rate limit", "code": 4}},
            ),
            (503, {"error": {"message": "Service temporarily unavailable", "code": 2}}),
        ]
    )
    message = await reply_delivered(tenant, conversation_id, {"text": "Retry me"})
    assert (message["delivery_status"], message["delivery_attempts"]) == ("sent", 3)
    assert len(graph.sends()) == 3

    graph.calls.clear()
    graph.script.append((400, {"error": {"message": "(#100) No matching user found", "code": 100}}))
    failed = await reply_delivered(tenant, conversation_id, {"text": "Hello?"})
    assert len(graph.sends()) == 1  # a 4xx is not retried
    assert (failed["delivery_status"], failed["delivery_attempts"]) == ("failed", 1)
    assert failed["delivery_error"]["code"] == 100
    assert failed["delivery_error"]["provider"] == "instagram"
