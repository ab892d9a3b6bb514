"""Email channel over a real mail server (GreenMail, started by `scripts/services up`):
messages delivered by SMTP into a mailbox, polled over IMAP into conversations, with
the folder's cursor surviving restarts without loss or duplicates."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, update

from api.services.email_poll import poll_all, poll_channel
from core.cli.channels import poll_email
from core.db.base import Base
from core.domain.channels import MailboxCursor
from tests import email_fixtures as mail
from tests.channel_helpers import messages_of, reply, reply_delivered, stored_count, upload
from tests.factories import TenantCtx, expect, get_json
from tests.mail_server import MailServer, mail_server


@pytest.fixture(scope="module")
def server() -> MailServer:
    return mail_server()


async def imap_channel(t: TenantCtx, server: MailServer, address: str, **imap: Any) -> str:
    config = {
        "address": address,
        "imap": {**server.imap_config(address), **imap},
        "smtp": server.smtp_config(),
    }
    body = {"type": "email", "name": "Mailbox", "config": config}
    created = expect(await t.client.post("/v1/channels", json=body, headers=t.key_headers), 201)
    return str(created["id"])


def mid() -> str:
    return f"{uuid.uuid4().hex}@mail.example.com"


async def conversations_of(t: TenantCtx, channel_id: str) -> list[dict[str, Any]]:
    page = await get_json(t, "/v1/conversations", channel_id=channel_id)
    items: list[dict[str, Any]] = page["items"]
    return items


async def cursor_of(t: TenantCtx, channel_id: str) -> MailboxCursor | None:
    async with t.backend.runtime.sessions() as session:
        return await session.get(MailboxCursor, (uuid.UUID(channel_id), "INBOX"))


async def test_polled_mail_threads_and_automatic_mail_is_skipped(
    tenant: TenantCtx, server: MailServer
) -> None:
    address = server.mailbox()
    channel_id = await imap_channel(tenant, server, address)
    jane = "jane@example.com"
    first = mid()
    server.deliver(mail.first_message(jane, first), address)
    server.deliver(mail.vacation_reply(jane, mid()), address)
    server.deliver(mail.bounce(mid()), address)
    server.deliver(mail.gmail_reply(jane, mid(), answering=first, references=[first]), address)
    server.deliver(mail.encoded_latin1("andre@example.de", mid()), address)

    result = await poll_channel(tenant.backend.runtime, uuid.UUID(channel_id))
    assert result.errors == []
    assert (result.fetched, result.stored, result.auto_replies, result.bounces) == (5, 3, 1, 1)
    conversations = {c["subject"]: c for c in await conversations_of(tenant, channel_id)}
    assert len(conversations) == 2
    thread = await messages_of(tenant, conversations["Order 1042 never arrived"]["id"])
    assert [m["text"].split("\n")[0] for m in thread] == [
        "Hi, my order 1042 was due last week and still has not arrived.",
        "Still nothing today, can you check with the courier?",
    ]
    [latin] = await messages_of(tenant, conversations["Rücksendung für Bestellung € 50"]["id"])
    assert latin["text"].startswith("Grüße aus Köln")
    cursor = await cursor_of(tenant, channel_id)
    assert cursor is not None
    assert cursor.last_uid == 5

    # Nothing new: nothing fetched; the mailbox keeps every message.
    again = await poll_channel(tenant.backend.runtime, uuid.UUID(channel_id))
    assert (again.fetched, again.stored) == (0, 0)
    assert len(server.read_all(address)) == 5


async def test_restarts_lose_and_repeat_nothing(tenant: TenantCtx, server: MailServer) -> None:
    runtime = tenant.backend.runtime
    address = server.mailbox()
    channel_id = await imap_channel(tenant, server, address)
    cid = uuid.UUID(channel_id)
    senders = [f"customer{i}@example.com" for i in range(4)]
    for sender in senders[:3]:
        server.deliver(mail.first_message(sender, mid(), f"Question from {sender}"), address)

    # A poller that stops after each message (limit 1) and starts again each time.
    first = await poll_channel(runtime, cid, limit=1)
    assert (first.fetched, first.stored, first.more) == (1, 1, True)
    server.deliver(mail.first_message(senders[3], mid(), "Late question"), address)
    for _ in range(3):
        assert (await poll_channel(runtime, cid, limit=1)).stored == 1
    assert (await poll_channel(runtime, cid)).fetched == 0
    assert await stored_count(tenant, channel_id) == 4

    # A crash after storing but before the cursor moved: the same UIDs come again and
    # are recognized by Message-ID.
    async with runtime.sessions() as session:
        await session.execute(update(MailboxCursor).values(last_uid=1))
        await session.commit()
    replay = await poll_channel(runtime, cid)
    assert (replay.fetched, replay.stored, replay.duplicates) == (3, 0, 3)

    # The server renumbered the folder (a new UIDVALIDITY): read again from the start.
    async with runtime.sessions() as session:
        await session.execute(update(MailboxCursor).values(uidvalidity=1, last_uid=99))
        await session.commit()
    renumbered = await poll_channel(runtime, cid)
    assert (renumbered.fetched, renumbered.stored, renumbered.duplicates) == (4, 0, 4)
    assert await stored_count(tenant, channel_id) == 4
    assert len(await conversations_of(tenant, channel_id)) == 4


async def test_unreachable_server_is_reported_and_nothing_moves(
    tenant: TenantCtx, server: MailServer
) -> None:
    address = server.mailbox()
    channel_id = await imap_channel(tenant, server, address, port=1)
    result = await poll_channel(tenant.backend.runtime, uuid.UUID(channel_id))
    assert result.fetched == 0
    assert "cannot connect" in result.errors[0]
    assert await cursor_of(tenant, channel_id) is None
    # poll_all covers every active channel with a mailbox, this one included.
    everything = await poll_all(tenant.backend.runtime)
    assert uuid.UUID(channel_id) in everything


def _drift(connection: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return [d for d in found if "mailbox_cursors" in str(d)]


async def test_migration_0006_matches_the_model(tenant: TenantCtx) -> None:
    async with tenant.backend.runtime.engine.connect() as connection:
        assert await connection.run_sync(_drift) == []


async def test_poll_email_command_once(tenant: TenantCtx, server: MailServer) -> None:
    address = server.mailbox()
    channel_id = await imap_channel(tenant, server, address)
    server.deliver(mail.first_message("frank@example.com", mid(), "From the command"), address)
    stored = await poll_email(tenant.backend.settings, once=True, interval=1, limit=10)
    assert stored >= 1
    assert await stored_count(tenant, channel_id) == 1


async def test_agent_reply_goes_out_threaded_and_the_answer_comes_back(
    tenant: TenantCtx, server: MailServer
) -> None:
    runtime = tenant.backend.runtime
    support = server.mailbox()
    customer = server.mailbox("jane")
    channel_id = await imap_channel(tenant, server, support)
    first, earlier = mid(), mid()
    raw = mail.gmail_reply(customer, first, answering=earlier, references=[earlier])
    server.deliver(raw, support)
    assert (await poll_channel(runtime, uuid.UUID(channel_id))).stored == 1
    [conversation] = await conversations_of(tenant, channel_id)

    refused = await reply(tenant, conversation["id"], {"template": {"name": "x", "language": "en"}})
    assert refused.status_code == 409
    sent = await reply_delivered(tenant, conversation["id"], {"text": "The courier has it."})
    assert sent["delivery_status"] == "sent", sent
    ours = sent["provider_message_id"]

    [out] = server.read_all(customer)
    assert out["Message-ID"] == f"<{ours}>"
    assert ours.startswith(sent["id"])  # the same on every attempt: a repeat is one message
    assert out["In-Reply-To"] == f"<{first}>"
    assert out["References"] == f"<{earlier}> <{first}>"
    assert out["Subject"] == "Re: Order 1042 never arrived"
    assert support in out["From"]
    assert out.get_content().strip() == "The courier has it."

    # Resolved; the customer answers our reply: the same conversation reopens.
    url = f"/v1/conversations/{conversation['id']}"
    h = tenant.agent.headers
    expect(await tenant.client.patch(url, json={"status": "resolved"}, headers=h), 200)
    answer = mail.gmail_reply(customer, mid(), answering=ours, references=[earlier, first, ours])
    server.deliver(answer, support)
    assert (await poll_channel(runtime, uuid.UUID(channel_id))).stored == 1
    [again] = await conversations_of(tenant, channel_id)
    assert again["id"] == conversation["id"]
    assert again["status"] == "open"
    assert len(await messages_of(tenant, conversation["id"])) == 3


async def test_unreachable_smtp_fails_the_reply_with_the_reason(
    tenant: TenantCtx, server: MailServer
) -> None:
    support = server.mailbox()
    config = {
        "address": support,
        "webhook_token": "push-token-0123456789abcdef",
        "smtp": {"host": server.host, "port": 1, "ssl": False, "starttls": False},
    }
    body = {"type": "email", "name": "Mailbox", "config": config}
    channel = expect(
        await tenant.client.post("/v1/channels", json=body, headers=tenant.key_headers), 201
    )
    pushed = await tenant.client.post(
        f"/webhooks/email/{channel['id']}",
        content=mail.first_message("kim@example.com", mid()),
        headers={
            "Content-Type": "message/rfc822",
            "Authorization": f"Bearer {config['webhook_token']}",
        },
    )
    expect(pushed, 200)
    [conversation] = await conversations_of(tenant, channel["id"])
    failed = await reply_delivered(tenant, conversation["id"], {"text": "Hello"})
    # A refused connection is transient: tried up to delivery_max_attempts (3 here).
    assert (failed["delivery_status"], failed["delivery_attempts"]) == ("failed", 3)
    assert failed["delivery_error"]["provider"] == "email"


async def test_reply_with_a_stored_attachment_arrives_attached(
    tenant: TenantCtx, server: MailServer
) -> None:
    runtime = tenant.backend.runtime
    support, customer = server.mailbox(), server.mailbox("lena")
    channel_id = await imap_channel(tenant, server, support)
    first = mid()
    server.deliver(mail.first_message(customer, first, "Invoice please"), support)
    assert (await poll_channel(runtime, uuid.UUID(channel_id))).stored == 1
    [conversation] = await conversations_of(tenant, channel_id)
    invoice = b"%PDF-1.4\n" + bytes(range(256)) * 8
    blob = await upload(tenant, invoice, "application/pdf")
    body = {
        "text": "Your invoice is attached.",
        "attachments": [
            {"key": blob.key, "content_type": "application/pdf", "filename": "invoice-1042.pdf"},
            {"type": "document", "url": "https://files.example/terms.pdf", "filename": "terms"},
        ],
    }
    sent = await reply_delivered(tenant, conversation["id"], body)
    assert sent["delivery_status"] == "sent", sent
    [out] = server.read_all(customer)
    assert out["In-Reply-To"] == f"<{first}>"
    assert out["References"] == f"<{first}>"
    text = out.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Your invoice is attached." in text.get_content()
    assert "terms: https://files.example/terms.pdf" in text.get_content()
    [attached] = list(out.iter_attachments())
    assert attached.get_filename() == "invoice-1042.pdf"
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_content() == invoice
