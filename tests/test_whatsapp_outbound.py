"""WhatsApp outbound beyond text: message templates synced from the business account
(paged), the checks a template reply passes (422 with the reason), the template payload
sent, and stored attachments uploaded with `/{phone_number_id}/media` then sent by id."""

from __future__ import annotations

import uuid
from typing import Any

from api.services.templates import sync_templates
from core.cli.channels import sync_templates as sync_templates_command
from tests.channel_helpers import delivered, reply, reply_delivered, upload
from tests.factories import TenantCtx, expect, expect_error, get_json
from tests.fake_graph import FakeGraph, template
from tests.test_whatsapp import inbound_thread, wa_channel

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def catalogue() -> list[dict[str, Any]]:
    """Five templates, one of them in two languages, of every shape the checks read."""
    return [
        template("order_update", "es", "Hola {{1}}, tu pedido {{2}} está en camino"),
        template("order_update", "en_US", "Hi {{1}}, order {{2}} is on its way"),
        template("welcome", "en_US", "Welcome to Acme!"),
        template("promo_draft", "en_US", "Save {{1}}%", status="PENDING"),
        template(
            "shipping_label",
            "en_US",
            "Your label for {{order}} is attached",
            header={"format": "DOCUMENT"},
        ),
        template(
            "titled",
            "en_US",
            "Ticket {{1}} was updated",
            header={"format": "TEXT", "text": "Ticket {{1}}"},
        ),
    ]


# (name, language, parameters) of a template reply, the 422 code, words of the reason.
REFUSED: list[tuple[tuple[str, str, list[str]], str, str]] = [
    (("nope", "en_US", []), "template_not_found", "not among the 6"),
    (("order_update", "fr", ["a", "b"]), "template_language", "en_US, es"),
    (("promo_draft", "en_US", ["10"]), "template_not_approved", "PENDING"),
    (
        ("order_update", "es", ["Ana"]),
        "template_parameters",
        "takes 2 parameters, the reply gives 1",
    ),
    (("welcome", "en_US", ["x"]), "template_parameters", "takes 0"),
    (("shipping_label", "en_US", ["A-1"]), "template_parameters", "header takes 1 parameter"),
    (("titled", "en_US", ["42"]), "template_parameters", "give `components`"),
]


async def templates_of(t: TenantCtx, channel_id: str) -> dict[str, Any]:
    path = f"/v1/channels/{channel_id}/templates"
    found: dict[str, Any] = expect(await t.client.get(path, headers=t.agent.headers), 200)
    return found


async def synced_channel(t: TenantCtx, graph: FakeGraph) -> str:
    graph.templates.extend(catalogue())
    channel_id = await wa_channel(t, graph)
    path = f"/v1/channels/{channel_id}/templates/sync"
    expect(await t.client.post(path, headers=t.admin.headers), 200)
    return channel_id


async def test_templates_sync_page_by_page_and_replace_the_stored_ones(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    graph.templates.extend(catalogue())
    channel_id = await wa_channel(tenant, graph)
    listed = await templates_of(tenant, channel_id)
    assert (listed["synced_at"], listed["items"]) == (None, [])

    synced = await sync_templates(tenant.backend.runtime, uuid.UUID(channel_id))
    assert synced.template_count == 6
    pages = graph.template_pages()
    assert len(pages) == 1  # the client asks 100 a page
    graph.calls.clear()
    # Smaller pages: the client follows `paging.next` to the end.
    for cursors in (True, False):
        graph.calls.clear()
        graph.template_cursors = cursors
        got = await _sync_with_page_size(tenant, channel_id, 4)
        assert got == 6
        assert len(graph.template_pages()) == 2, graph.template_pages()
        assert "after=4" in graph.template_pages()[1]
        assert all(c.authorization == "Bearer wa-access-token" for c in graph.calls)

    listed = await templates_of(tenant, channel_id)
    assert [(t["name"], t["language"]) for t in listed["items"]][:3] == [
        ("order_update", "en_US"),
        ("order_update", "es"),
        ("promo_draft", "en_US"),
    ]
    assert listed["synced_at"] is not None
    assert listed["error"] is None
    draft = next(t for t in listed["items"] if t["name"] == "promo_draft")
    assert (draft["status"], draft["category"]) == ("PENDING", "UTILITY")
    assert draft["components"][0] == {"type": "BODY", "text": "Save {{1}}%"}

    # Deleted at Meta, gone here; the endpoint is for admins, the list for agents.
    graph.templates[:] = [t for t in graph.templates if t["name"] != "promo_draft"]
    path = f"/v1/channels/{channel_id}/templates/sync"
    expect_error(await tenant.client.post(path, headers=tenant.agent.headers), 403)
    resynced = expect(await tenant.client.post(path, headers=tenant.admin.headers), 200)
    assert len(resynced["items"]) == 5
    expect_error(
        await tenant.client.get(
            f"/v1/channels/{channel_id}/templates", headers=tenant.viewer.headers
        ),
        403,
    )


async def _sync_with_page_size(t: TenantCtx, channel_id: str, size: int) -> int:
    from connectors.meta.graph import RetryPolicy
    from connectors.whatsapp.config import WhatsAppConfig
    from connectors.whatsapp.graph import GraphClient
    from core.domain.channels import Channel

    async with t.backend.runtime.sessions() as session:
        channel = await session.get(Channel, uuid.UUID(channel_id))
        assert channel is not None
        config = WhatsAppConfig.model_validate(channel.config)
    async with GraphClient(config, RetryPolicy(max_attempts=1)) as graph:
        return len([t async for t in graph.message_templates(page_size=size)])


async def test_a_failed_sync_is_a_502_and_kept_on_the_channel(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    graph.script.append(
        (403, {"error": {"message": "(#200) Requires whatsapp_business_management", "code": 200}})
    )
    path = f"/v1/channels/{channel_id}/templates/sync"
    error = expect_error(await tenant.client.post(path, headers=tenant.admin.headers), 502)
    assert error["code"] == "provider_error"
    assert error["details"]["code"] == 200
    listed = await templates_of(tenant, channel_id)
    assert listed["synced_at"] is None
    assert "whatsapp_business_management" in listed["error"]
    # Another channel type has no templates.
    expect_error(
        await tenant.client.post(
            f"/v1/channels/{tenant.channel_id}/templates/sync", headers=tenant.admin.headers
        ),
        409,
        "unsupported_channel",
    )


async def test_template_replies_are_checked_against_the_synced_templates(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await synced_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15552000001")
    before = len(graph.sends())

    for (name, language, parameters), code, words in REFUSED:
        body = {"template": {"name": name, "language": language, "parameters": parameters}}
        error = expect_error(await reply(tenant, conversation_id, body), 422, code)
        assert words in error["message"], (code, error["message"])
    assert len(graph.sends()) == before  # nothing stored, nothing sent

    titled = {
        "name": "titled",
        "language": "en_US",
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "42"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "42"}]},
        ],
    }
    sent = await reply_delivered(tenant, conversation_id, {"template": titled})
    assert (sent["delivery_status"], sent["warnings"]) == ("sent", [])
    assert graph.sends()[-1]["template"] == {
        "name": "titled",
        "language": {"code": "en_US"},
        "components": titled["components"],
    }
    welcome = await reply_delivered(
        tenant, conversation_id, {"template": {"name": "welcome", "language": "en_US"}}
    )
    assert welcome["delivery_status"] == "sent"
    assert graph.sends()[-1] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15552000001",
        "type": "template",
        "template": {"name": "welcome", "language": {"code": "en_US"}},
    }
    assert welcome["text"] == "[template welcome]"


async def test_a_channel_never_synced_sends_templates_unchecked_with_a_warning(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15552000002")
    body = {"template": {"name": "anything", "language": "de", "parameters": ["1"]}}
    stored = expect(await reply(tenant, conversation_id, body), 201)
    assert "never synced" in stored["warnings"][0]
    graph.script.append(
        (404, {"error": {"message": "(#132001) Template name does not exist", "code": 132001}})
    )
    sent = await delivered(tenant, stored)
    # Meta is the judge then: its refusal shows on the message.
    assert (sent["delivery_status"], sent["delivery_error"]["code"]) == ("failed", 132001)
    shown = await get_json(tenant, f"/v1/conversations/{conversation_id}")
    assert "never synced" in shown["messages"][-1]["warnings"][0]


async def test_sync_templates_command(tenant: TenantCtx, fresh_graph: FakeGraph) -> None:
    graph = fresh_graph
    graph.templates.extend(catalogue())
    channel_id = await wa_channel(tenant, graph)
    failed = await sync_templates_command(tenant.backend.settings, uuid.UUID(channel_id))
    assert failed == 0
    listed = await templates_of(tenant, channel_id)
    assert len(listed["items"]) == 6


async def test_stored_attachment_is_uploaded_then_sent_by_media_id(
    tenant: TenantCtx, fresh_graph: FakeGraph
) -> None:
    graph = fresh_graph
    channel_id = await wa_channel(tenant, graph)
    conversation_id = await inbound_thread(tenant, channel_id, "15552000003")
    blob = await upload(tenant, PNG, "image/png", "label.png")
    image = {"key": blob.key, "content_type": "image/png", "filename": "label.png"}
    sent = await reply_delivered(
        tenant, conversation_id, {"text": "Your label", "attachments": [image]}
    )
    assert sent["delivery_status"] == "sent"
    [uploaded] = graph.uploads
    assert uploaded.data == PNG
    assert (uploaded.filename, uploaded.content_type) == ("label.png", "image/png")
    assert uploaded.fields == {"messaging_product": "whatsapp", "type": "image/png"}
    assert graph.calls[-2].path == "/v21.0/1000000001/media"
    assert graph.sends()[-1]["type"] == "image"
    assert graph.sends()[-1]["image"] == {"id": uploaded.media_id, "caption": "Your label"}

    # As `POST /v1/attachments` hands it out: the type and name come with it.
    pdf = await upload(tenant, b"%PDF-1.4 label", "application/pdf", "label.pdf")
    document = pdf.attachment
    await reply_delivered(tenant, conversation_id, {"text": "As PDF", "attachments": [document]})
    assert graph.sends()[-1]["type"] == "document"
    assert graph.sends()[-1]["document"] == {
        "id": graph.uploads[-1].media_id,
        "caption": "As PDF",
        "filename": "label.pdf",
    }

    # A failed upload is retried like a failed send; the reply is sent in the end.
    graph.script.append((503, {"error": {"message": "Service unavailable", "code": 2}}))
    again = await reply_delivered(tenant, conversation_id, {"attachments": [image]})
    assert (again["delivery_status"], again["delivery_attempts"]) == ("sent", 2)

    for attachment, code in (
        ({"key": "0" * 64, "content_type": "image/png"}, "unknown_attachment"),
        ({"key": "../etc/passwd", "content_type": "image/png"}, "invalid_attachment"),
        ({"storage_key": "1" * 63, "mime_type": "image/png"}, "invalid_attachment"),
    ):
        expect_error(await reply(tenant, conversation_id, {"attachments": [attachment]}), 422, code)
