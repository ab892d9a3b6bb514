"""Email channel, pushed: config and secrets, the webhook's bearer token, MIME parsing
(charsets, encoded words, HTML-only, attachments), auto-replies and bounces skipped,
and threading across Gmail- and Outlook-style replies."""

from __future__ import annotations

import uuid
from typing import Any

from core.domain.conversations import Conversation, Message
from tests import email_fixtures as mail
from tests.channel_helpers import messages_of, stored_count
from tests.factories import TenantCtx, count_rows, expect, expect_error, get_json

TOKEN = "push-token-0123456789abcdef"


def email_config(**changes: Any) -> dict[str, Any]:
    return {
        "address": mail.SUPPORT,
        "display_name": "Acme Support",
        "webhook_token": TOKEN,
        **changes,
    }


async def email_channel(t: TenantCtx, **changes: Any) -> str:
    body = {"type": "email", "name": "Support mailbox", "config": email_config(**changes)}
    created = expect(await t.client.post("/v1/channels", json=body, headers=t.key_headers), 201)
    return str(created["id"])


async def push(t: TenantCtx, channel_id: str, raw: bytes, token: str = TOKEN) -> Any:
    return await t.client.post(
        f"/webhooks/email/{channel_id}",
        content=raw,
        headers={"Content-Type": "message/rfc822", "Authorization": f"Bearer {token}"},
    )


async def conversations_of(t: TenantCtx, channel_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await get_json(t, "/v1/conversations", channel_id=channel_id))[
        "items"
    ]
    return found


async def email_meta(t: TenantCtx, message: dict[str, Any]) -> dict[str, Any]:
    """The stored `metadata.email` of a message (the API does not show metadata)."""
    async with t.backend.runtime.sessions() as session:
        found = await session.get(Message, uuid.UUID(message["id"]))
        assert found is not None
        meta: dict[str, Any] = found.meta["email"]
        return meta


def mid() -> str:
    return f"{uuid.uuid4().hex}@mail.example.com"


async def test_config_is_validated_and_secrets_never_shown(tenant: TenantCtx) -> None:
    for broken in (
        {"display_name": "no address"},
        email_config(address="not-an-address"),
        email_config(imap={"host": "imap.example.com"}),
        email_config(webhook_token="short"),
        email_config(pop3={"host": "x"}),
    ):
        expect_error(
            await tenant.client.post(
                "/v1/channels",
                json={"type": "email", "name": "Mail", "config": broken},
                headers=tenant.key_headers,
            ),
            422,
            "invalid_channel_config",
        )
    imap = {"host": "imap.example.com", "username": "support", "password": "imap-pass"}
    smtp = {"host": "smtp.example.com", "username": "support", "password": "smtp-pass"}
    channel_id = await email_channel(tenant, imap=imap, smtp=smtp)
    shown = (await get_json(tenant, f"/v1/channels/{channel_id}"))["config"]
    assert shown["webhook_token"] == "***"
    assert shown["imap"]["password"] == "***"
    assert shown["smtp"]["password"] == "***"
    assert shown["imap"]["port"] == 993
    assert shown["smtp"]["starttls"] is True
    assert "imap-pass" not in str(shown)
    assert TOKEN not in str(shown)


async def test_push_needs_the_channel_token_and_raw_message(tenant: TenantCtx) -> None:
    channel_id = await email_channel(tenant)
    raw = mail.first_message("jane@example.com", mid())
    expect_error(await push(tenant, channel_id, raw, token="wrong-token-0123456789"), 401)
    no_auth = await tenant.client.post(
        f"/webhooks/email/{channel_id}", content=raw, headers={"Content-Type": "message/rfc822"}
    )
    expect_error(no_auth, 401, "bad_token")
    as_json = await tenant.client.post(
        f"/webhooks/email/{channel_id}",
        content=raw,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    expect_error(as_json, 400, "unsupported_content_type")
    expect_error(await push(tenant, channel_id, b"\r\n\r\n"), 400, "malformed_email")
    no_sender = b"Subject: hi\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
    expect_error(await push(tenant, channel_id, no_sender), 400, "malformed_email")
    expect_error(await push(tenant, str(uuid.uuid4()), raw), 404)
    # A channel without a token refuses every push.
    tokenless = await email_channel(tenant, webhook_token=None)
    expect_error(await push(tenant, tokenless, raw), 401, "bad_token")
    assert await stored_count(tenant, channel_id) == 0


async def test_parsing_charsets_html_and_attachments(tenant: TenantCtx) -> None:
    channel_id = await email_channel(tenant)
    latin = expect(
        await push(tenant, channel_id, mail.encoded_latin1("andre@example.de", mid())), 200
    )
    assert latin["stored"] == 1
    html = expect(await push(tenant, channel_id, mail.html_only("bob@example.org", mid())), 200)
    assert html["stored"] == 1
    expect(await push(tenant, channel_id, mail.with_attachment("carol@example.org", mid())), 200)

    conversations = {c["subject"]: c for c in await conversations_of(tenant, channel_id)}
    subject = "Rücksendung für Bestellung € 50"
    assert subject in conversations, conversations.keys()
    [message] = await messages_of(tenant, conversations[subject]["id"])
    assert message["text"] == "Grüße aus Köln, ich möchte die Ware zurückgeben."
    assert message["content_type"] == "email"
    customer = await get_json(tenant, f"/v1/customers/{conversations[subject]['customer_id']}")
    assert customer["name"] == "André Müller"

    [invoice] = await messages_of(tenant, conversations["Invoice question"]["id"])
    assert invoice["text"] == "Why was I charged twice?\n\nInvoice A\nInvoice B"
    assert "alert" not in invoice["text"]
    assert "color" not in invoice["text"]
    assert (await email_meta(tenant, invoice))["html_only"] is True

    [receipt] = await messages_of(tenant, conversations["Receipt attached"]["id"])
    [attachment] = receipt["attachments"]
    assert attachment["status"] == "stored"
    assert attachment["filename"] == "receipt.pdf"
    assert attachment["mime_type"] == "application/pdf"
    assert attachment["size"] == len(mail.PDF)
    assert await tenant.backend.runtime.attachments.get(attachment["storage_key"]) == mail.PDF


async def test_refused_attachment_is_kept_unavailable(tenant: TenantCtx) -> None:
    channel_id = await email_channel(tenant)
    raw = mail.with_attachment("dave@example.org", mid(), b"MZ\x90\x00", "application/x-msdownload")
    expect(await push(tenant, channel_id, raw), 200)
    [conversation] = await conversations_of(tenant, channel_id)
    [message] = await messages_of(tenant, conversation["id"])
    [attachment] = message["attachments"]
    assert attachment["status"] == "unavailable"
    assert "not allowed" in attachment["error"]
    assert message["text"] == "Here is the receipt."


async def test_auto_replies_and_bounces_open_nothing(tenant: TenantCtx) -> None:
    channel_id = await email_channel(tenant)
    vacation = expect(
        await push(tenant, channel_id, mail.vacation_reply("jane@example.com", mid())), 200
    )
    assert vacation == {"stored": 0, "duplicates": 0, "auto_replies": 1, "bounces": 0, "own": 0}
    bounced = expect(await push(tenant, channel_id, mail.bounce(mid())), 200)
    assert bounced["bounces"] == 1
    assert bounced["stored"] == 0
    bulk = mail.first_message("news@example.com", mid()).replace(
        b"MIME-Version", b"Precedence: bulk\r\nMIME-Version"
    )
    assert expect(await push(tenant, channel_id, bulk), 200)["auto_replies"] == 1
    # "Auto-Submitted: no" is a person's mail.
    person = mail.first_message("erin@example.com", mid()).replace(
        b"MIME-Version", b"Auto-Submitted: no\r\nMIME-Version"
    )
    assert expect(await push(tenant, channel_id, person), 200)["stored"] == 1
    # A copy of our own mail (a BCC to the mailbox) is not a customer's message.
    own = mail.first_message(mail.SUPPORT, mid())
    assert expect(await push(tenant, channel_id, own), 200)["own"] == 1
    assert await stored_count(tenant, channel_id) == 1
    assert (
        await count_rows(
            tenant.backend.runtime,
            Conversation.id,
            Conversation.channel_id == uuid.UUID(channel_id),
        )
        == 1
    )


async def test_gmail_and_outlook_replies_thread_and_duplicates_store_once(
    tenant: TenantCtx,
) -> None:
    channel_id = await email_channel(tenant)
    jane = "jane.doe@example.com"
    first = mid()
    raw = mail.first_message(jane, first)
    assert expect(await push(tenant, channel_id, raw), 200)["stored"] == 1
    assert expect(await push(tenant, channel_id, raw), 200)["duplicates"] == 1
    [conversation] = await conversations_of(tenant, channel_id)
    conversation_id = conversation["id"]

    # The agent resolves it; Gmail's reply (In-Reply-To/References) reopens the same one.
    h = tenant.agent.headers
    url = f"/v1/conversations/{conversation_id}"
    expect(await tenant.client.patch(url, json={"status": "resolved"}, headers=h), 200)
    gmail = mid()
    raw = mail.gmail_reply(jane, gmail, answering=first, references=[first])
    assert expect(await push(tenant, channel_id, raw), 200)["stored"] == 1
    [conversation] = await conversations_of(tenant, channel_id)
    assert conversation["id"] == conversation_id
    assert conversation["status"] == "open"
    messages = await messages_of(tenant, conversation_id)
    assert (await email_meta(tenant, messages[-1]))["thread"] == {
        "conversation_id": conversation_id,
        "matched_by": "references",
    }
    # The quoted earlier message is cut off the reply.
    assert messages[-1]["text"] == "Still nothing today, can you check with the courier?"
    assert (await email_meta(tenant, messages[-1]))["quote_trimmed"] is True

    # Resolved again; Outlook's answer has no thread headers: the subject finds it.
    expect(await tenant.client.patch(url, json={"status": "resolved"}, headers=h), 200)
    raw = mail.outlook_reply(jane, mid(), "RE: Order 1042 never arrived")
    assert expect(await push(tenant, channel_id, raw), 200)["stored"] == 1
    [conversation] = await conversations_of(tenant, channel_id)
    assert conversation["id"] == conversation_id
    messages = await messages_of(tenant, conversation_id)
    matched = [(await email_meta(tenant, m)).get("thread", {}).get("matched_by") for m in messages]
    assert matched == [
        None,
        "references",
        "subject",
    ]
    assert messages[-1]["text"] == "Danke \u2013 the parcel is here now."

    # Another subject from another sender opens its own conversation.
    expect(await push(tenant, channel_id, mail.first_message("x@example.com", mid(), "Other")), 200)
    assert len(await conversations_of(tenant, channel_id)) == 2
