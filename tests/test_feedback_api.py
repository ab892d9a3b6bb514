"""People's corrections of the models on both backends: PATCH /v1/messages/{id}/analysis,
ticket changes that contradict a prediction, GET /v1/ai/quality. Analyses come from the
enrichment handler on the stub models (tests/pipeline_doubles.py): intent `order_status`
for "order", sentiment `neutral`, urgency `normal` unless "urgent", head versions "v1"."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from core.events.store import EventRecord, OutboxRecord
from tests.factories import TenantCtx, create_ticket, expect, expect_error, inbound
from tests.feedback_helpers import (
    analyse_all,
    analysed_message,
    analysis_url,
    correct,
    feedback_rows,
)


async def test_a_correction_and_a_confirmation(tenant: TenantCtx) -> None:
    received = await analysed_message(tenant, "Where is my order 4411?")
    message_id = received["message"]["id"]

    result = await correct(tenant, message_id, {"intent": "return_refund", "sentiment": "neutral"})
    assert (result["intent"], result["sentiment"], result["urgency"]) == (
        "return_refund",
        "neutral",
        "normal",
    )
    assert set(result["corrections"]) == {"intent", "sentiment"}
    assert result["corrections"]["intent"]["predicted"] == "order_status"
    assert result["corrections"]["intent"]["source"] == "agent_correction"
    assert result["corrections"]["intent"]["actor_id"] == tenant.agent.id
    assert result["versions"]["intent"] == "v1"

    rows = {row.task: row for row in await feedback_rows(tenant, message_id)}
    assert set(rows) == {"intent", "sentiment"}
    intent, sentiment = rows["intent"], rows["sentiment"]
    assert (intent.label, intent.predicted_label, intent.confirmed) == (
        "return_refund",
        "order_status",
        False,
    )
    assert (sentiment.label, sentiment.predicted_label, sentiment.confirmed) == (
        "neutral",
        "neutral",
        True,
    )
    assert intent.model_version == "v1"
    assert intent.text == "Where is my order 4411?"
    assert intent.language == "en"
    assert (intent.actor_type, intent.actor_id) == ("user", tenant.agent.id)
    assert str(intent.conversation_id) == received["conversation_id"]

    # The conversation reads the corrected label; the event and its outbox row are there.
    detail = expect(
        await tenant.client.get(
            f"/v1/conversations/{received['conversation_id']}", headers=tenant.viewer.headers
        ),
        200,
    )
    shown = detail["messages"][0]["analysis"]
    assert shown["intent"] == "return_refund"
    assert shown["corrections"]["intent"]["label"] == "return_refund"
    async with tenant.backend.runtime.sessions() as session:
        event = await session.scalar(
            select(EventRecord).where(
                EventRecord.aggregate_id == uuid.UUID(message_id),
                EventRecord.event_type == "analysis.corrected",
            )
        )
        assert event is not None
        outbox = await session.scalar(
            select(func.count()).select_from(OutboxRecord).where(OutboxRecord.event_id == event.id)
        )
    assert outbox == 1
    assert event.actor_id == tenant.agent.id
    assert {label["task"]: label["confirmed"] for label in event.payload["labels"]} == {
        "intent": False,
        "sentiment": True,
    }

    # A second review replaces the first in what is shown.
    again = await correct(tenant, message_id, {"intent": "order_status"})
    assert again["intent"] == "order_status"
    assert again["corrections"]["intent"]["predicted"] == "order_status"
    assert len(await feedback_rows(tenant, message_id)) == 3


async def test_roles_and_credentials(tenant: TenantCtx) -> None:
    received = await analysed_message(tenant, "Where is my order 1?")
    message_id = received["message"]["id"]
    response = await tenant.client.patch(
        analysis_url(message_id), json={"urgency": "high"}, headers=tenant.viewer.headers
    )
    expect_error(response, 403, "forbidden")
    await correct(tenant, message_id, {"urgency": "high"}, headers=tenant.admin.headers)
    await correct(tenant, message_id, {"urgency": "low"}, headers=tenant.key_headers)
    rows = await feedback_rows(tenant, message_id)
    assert [(r.actor_type, r.actor_id) for r in rows] == [
        ("user", tenant.admin.id),
        ("api_key", tenant.admin_key_id),
    ]
    anonymous = await tenant.client.patch(analysis_url(message_id), json={"urgency": "low"})
    expect_error(anonymous, 401)


async def test_another_tenants_message_is_not_found(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    received = await analysed_message(other_tenant, "Where is my order 2?")
    message_id = received["message"]["id"]
    response = await tenant.client.patch(
        analysis_url(message_id), json={"intent": "billing"}, headers=tenant.admin.headers
    )
    expect_error(response, 404, "not_found")
    missing = await tenant.client.patch(
        analysis_url(str(uuid.uuid4())), json={"intent": "billing"}, headers=tenant.agent.headers
    )
    expect_error(missing, 404, "not_found")
    assert await feedback_rows(other_tenant) == []


async def test_labels_are_checked_against_the_tenants_taxonomy(tenant: TenantCtx) -> None:
    received = await analysed_message(tenant, "Where is my order 3?")
    message_id = received["message"]["id"]
    url = analysis_url(message_id)

    async def refused(body: Any, code: str) -> dict[str, Any]:
        response = await tenant.client.patch(url, json=body, headers=tenant.agent.headers)
        return expect_error(response, 422, code)

    error = await refused({"intent": "teleportation"}, "unknown_label")
    assert "teleportation" in error["message"]
    assert error["details"]["task"] == "intent"
    assert "billing" in error["details"]["allowed"]
    error = await refused({"urgency": "critical"}, "unknown_label")
    assert error["details"]["allowed"] == ["low", "normal", "high", "urgent"]
    await refused({"sentiment": "furious"}, "unknown_label")
    await refused({}, "validation_error")
    await refused({"intent": None}, "validation_error")
    await refused({"intent": ""}, "validation_error")
    await refused({"intnet": "billing"}, "validation_error")
    await refused(["billing"], "validation_error")

    # A switched-off default intent is refused; the tenant's own intent is accepted.
    expect(
        await tenant.client.patch(
            "/v1/intents/praise", json={"enabled": False}, headers=tenant.admin.headers
        ),
        200,
    )
    error = await refused({"intent": "praise"}, "unknown_label")
    assert "praise" not in error["details"]["allowed"]
    expect(
        await tenant.client.post(
            "/v1/intents",
            json={
                "name": "warranty_claim",
                "description": "to claim a repair or replacement under warranty",
                "examples": [
                    "my blender broke after a month, is it under warranty?",
                    "the warranty should cover this broken screen",
                    "I want a replacement under the two-year guarantee",
                ],
            },
            headers=tenant.admin.headers,
        ),
        201,
    )
    result = await correct(tenant, message_id, {"intent": "warranty_claim"})
    assert result["intent"] == "warranty_claim"
    assert [r.label for r in await feedback_rows(tenant, message_id)] == ["warranty_claim"]


async def test_a_message_not_yet_analysed_cannot_be_corrected(tenant: TenantCtx) -> None:
    received = await inbound(tenant, external_id="bo", text="Where is my order 4?")
    response = await tenant.client.patch(
        analysis_url(received["message"]["id"]),
        json={"intent": "billing"},
        headers=tenant.agent.headers,
    )
    expect_error(response, 409, "not_analyzed")


async def quality(t: TenantCtx, status: int = 200, **params: str) -> Any:
    return expect(
        await t.client.get("/v1/ai/quality", params=params, headers=t.agent.headers), status
    )


async def test_quality_counts_the_latest_review_of_each_prediction(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    empty = await quality(tenant)
    assert (empty["items"], empty["totals"], empty["reviewed"], empty["accuracy"]) == (
        [],
        [],
        0,
        None,
    )
    texts = [f"Where is my order {n}?" for n in range(4)]
    messages = []
    for n, text in enumerate(texts):
        received = await inbound(tenant, external_id=f"c{n}", text=text)
        messages.append(received["message"]["id"])
    await analyse_all(tenant)
    # intent: 3 confirmed, 1 corrected; the corrected one is first confirmed, then changed.
    for message_id in messages[:3]:
        await correct(tenant, message_id, {"intent": "order_status"})
    await correct(tenant, messages[3], {"intent": "order_status", "urgency": "urgent"})
    await correct(tenant, messages[3], {"intent": "billing"})
    # The other tenant's reviews stay out of this tenant's figures.
    other = await analysed_message(other_tenant, "Where is my order 9?")
    await correct(other_tenant, other["message"]["id"], {"intent": "billing"})

    report = await quality(tenant)
    assert report["items"] == [
        {
            "task": "intent",
            "model_version": "v1",
            "reviewed": 4,
            "corrected": 1,
            "accuracy": 0.75,
        },
        {
            "task": "urgency",
            "model_version": "v1",
            "reviewed": 1,
            "corrected": 1,
            "accuracy": 0.0,
        },
    ]
    assert [t["task"] for t in report["totals"]] == ["intent", "urgency"]
    assert (report["reviewed"], report["corrected"], report["accuracy"]) == (5, 2, 0.6)
    assert report["since"] is None

    rows = await feedback_rows(tenant)
    cut = rows[-1].created_at.isoformat()
    recent = await quality(tenant, since=cut)
    assert recent["items"] == [
        {"task": "intent", "model_version": "v1", "reviewed": 1, "corrected": 1, "accuracy": 0.0}
    ]
    other_report = await quality(other_tenant)
    assert (other_report["reviewed"], other_report["corrected"]) == (1, 1)

    expect_error(
        await tenant.client.get("/v1/ai/quality", headers=tenant.viewer.headers), 403, "forbidden"
    )
    expect_error(
        await tenant.client.get(
            "/v1/ai/quality", params={"since": "yesterday"}, headers=tenant.agent.headers
        ),
        422,
        "validation_error",
    )
    expect_error(
        await tenant.client.get(
            "/v1/ai/quality", params={"since": "2026-01-01T00:00:00"}, headers=tenant.agent.headers
        ),
        422,
        "validation_error",
    )


async def patch_ticket(t: TenantCtx, ticket_id: str, **fields: Any) -> Any:
    return expect(
        await t.client.patch(f"/v1/tickets/{ticket_id}", json=fields, headers=t.agent.headers),
        200,
    )


async def test_a_priority_change_against_the_suggestion_is_urgency_feedback(
    tenant: TenantCtx,
) -> None:
    first = await inbound(tenant, external_id="dee", text="Hello there")
    ticket = await create_ticket(tenant, conversation_id=first["conversation_id"])
    latest = await inbound(tenant, external_id="dee", text="Where is my order 77?")
    await analyse_all(tenant)
    shown = expect(
        await tenant.client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.agent.headers), 200
    )
    assert shown["custom_fields"]["ai"]["suggested_priority"] == "normal"

    # Set to what was suggested: nothing to learn.
    await patch_ticket(tenant, ticket["id"], priority="normal")
    await patch_ticket(tenant, ticket["id"], subject="Order 77")
    assert await feedback_rows(tenant) == []

    await patch_ticket(tenant, ticket["id"], priority="high")
    rows = await feedback_rows(tenant)
    assert len(rows) == 1
    row = rows[0]
    assert (row.task, row.label, row.predicted_label, row.confirmed, row.source) == (
        "urgency",
        "high",
        "normal",
        False,
        "ticket_change",
    )
    # The ticket's latest analysed customer message.
    assert str(row.message_id) == latest["message"]["id"]
    assert row.text == "Where is my order 77?"
    assert row.actor_id == tenant.agent.id


async def test_an_intent_tag_replaced_is_intent_feedback(tenant: TenantCtx) -> None:
    first = await inbound(tenant, external_id="eve", text="Where is my order 5?")
    ticket = await create_ticket(tenant, conversation_id=first["conversation_id"])
    await inbound(tenant, external_id="eve", text="I want a refund")
    await analyse_all(tenant)
    stored = expect(
        await tenant.client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.agent.headers), 200
    )
    assert {"intent:order_status", "intent:return_refund"} <= set(stored["tags"])

    # Removed without a replacement, or replaced by an unknown intent: not clean, skipped.
    tags = [t for t in stored["tags"] if t != "intent:return_refund"]
    await patch_ticket(tenant, ticket["id"], tags=tags)
    await patch_ticket(tenant, ticket["id"], tags=[*tags, "intent:frobnicate"])
    assert await feedback_rows(tenant) == []

    # intent:order_status -> intent:billing (with another tag added beside it).
    tags = [t for t in tags if t != "intent:order_status"] + ["intent:frobnicate"]
    await patch_ticket(tenant, ticket["id"], tags=[*tags, "intent:billing", "vip"])
    rows = await feedback_rows(tenant)
    assert [(r.task, r.label, r.predicted_label, r.text) for r in rows] == [
        ("intent", "billing", "order_status", "Where is my order 5?")
    ]
    assert str(rows[0].message_id) == first["message"]["id"]


async def test_an_explicit_correction_wins_over_a_ticket_change(tenant: TenantCtx) -> None:
    received = await inbound(tenant, external_id="fay", text="Where is my order 6?")
    ticket = await create_ticket(tenant, conversation_id=received["conversation_id"])
    await analyse_all(tenant)
    await correct(tenant, received["message"]["id"], {"urgency": "low"})
    await patch_ticket(tenant, ticket["id"], priority="urgent")
    rows = await feedback_rows(tenant)
    assert [(r.source, r.label) for r in rows] == [("agent_correction", "low")]


async def test_a_bulk_priority_change_is_feedback_too(tenant: TenantCtx) -> None:
    received = await inbound(tenant, external_id="gus", text="Where is my order 8?")
    ticket = await create_ticket(tenant, conversation_id=received["conversation_id"])
    await analyse_all(tenant)
    result = expect(
        await tenant.client.post(
            "/v1/tickets/bulk",
            json={"ids": [ticket["id"]], "changes": {"priority": "low"}},
            headers=tenant.agent.headers,
        ),
        200,
    )
    assert (result["updated"], result["failed"]) == (1, 0)
    rows = await feedback_rows(tenant)
    assert [(r.task, r.label, r.source) for r in rows] == [("urgency", "low", "ticket_change")]


async def test_erasing_a_customer_erases_their_examples(tenant: TenantCtx) -> None:
    received = await analysed_message(tenant, "Where is my order 10?", external_id="hal")
    await correct(tenant, received["message"]["id"], {"intent": "billing"})
    assert len(await feedback_rows(tenant)) == 1
    response = await tenant.client.delete(
        f"/v1/customers/{received['customer_id']}", headers=tenant.agent.headers
    )
    assert response.status_code == 204, response.text
    assert await feedback_rows(tenant) == []
    report = expect(await tenant.client.get("/v1/ai/quality", headers=tenant.agent.headers), 200)
    assert report["reviewed"] == 0
