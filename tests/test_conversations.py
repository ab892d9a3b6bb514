"""Conversations: replies, notes, assignment, status changes and merging threads."""

from __future__ import annotations

from tests.factories import (
    TenantCtx,
    create_channel,
    create_team,
    create_ticket,
    expect,
    expect_error,
    get_json,
    inbound,
)


def _url(conversation: str, tail: str = "") -> str:
    return f"/v1/conversations/{conversation}{tail}"


async def test_reply_is_queued_outbound_and_counted(tenant: TenantCtx) -> None:
    conv = (await inbound(tenant, text="Hi"))["conversation_id"]
    reply = expect(
        await tenant.client.post(
            _url(conv, "/messages"), json={"text": "Hello!"}, headers=tenant.agent.headers
        ),
        201,
    )
    assert (reply["direction"], reply["sender_type"], reply["delivery_status"]) == (
        "outbound",
        "agent",
        "queued",
    )
    assert reply["sender_id"] == tenant.agent.id
    # The API channel has no provider: the reply waits for its integration, not the worker.
    assert (reply["delivery_attempts"], reply["next_attempt_at"], reply["warnings"]) == (
        0,
        None,
        [],
    )
    detail = await get_json(tenant, _url(conv))
    assert detail["message_count"] == 2
    assert [m["text"] for m in detail["messages"]] == ["Hi", "Hello!"]  # oldest first
    assert detail["last_message_at"] == reply["sent_at"]
    latest = await get_json(tenant, _url(conv), messages_limit=1)
    assert [m["text"] for m in latest["messages"]] == ["Hello!"]
    expect_error(
        await tenant.client.post(
            _url(conv, "/messages"), json={"text": "   "}, headers=tenant.agent.headers
        ),
        422,
    )


async def test_notes_are_internal(tenant: TenantCtx) -> None:
    conv = (await inbound(tenant))["conversation_id"]
    note = expect(
        await tenant.client.post(
            _url(conv, "/notes"), json={"body": "  VIP, be nice  "}, headers=tenant.agent.headers
        ),
        201,
    )
    assert note["body"] == "VIP, be nice"
    assert note["author_id"] == tenant.agent.id
    detail = await get_json(tenant, _url(conv))
    assert [n["id"] for n in detail["notes"]] == [note["id"]]
    assert detail["message_count"] == 1  # a note is not a message
    expect_error(
        await tenant.client.post(
            _url(conv, "/notes"), json={"body": ""}, headers=tenant.agent.headers
        ),
        422,
    )


async def test_assign_and_unassign(tenant: TenantCtx) -> None:
    conv = (await inbound(tenant))["conversation_id"]
    team = (await create_team(tenant, member_ids=[tenant.agent.id]))["id"]
    h = tenant.agent.headers
    both = expect(
        await tenant.client.post(
            _url(conv, "/assign"), json={"assignee_id": tenant.agent.id, "team_id": team}, headers=h
        ),
        200,
    )
    assert (both["assignee_id"], both["team_id"]) == (tenant.agent.id, team)
    # Only the fields sent change; null unassigns.
    cleared = expect(
        await tenant.client.post(_url(conv, "/assign"), json={"assignee_id": None}, headers=h), 200
    )
    assert (cleared["assignee_id"], cleared["team_id"]) == (None, team)
    expect_error(
        await tenant.client.post(_url(conv, "/assign"), json={}, headers=h), 400, "empty_change"
    )
    expect(
        await tenant.client.delete(f"/v1/users/{tenant.viewer.id}", headers=tenant.key_headers), 200
    )
    inactive = await tenant.client.post(
        _url(conv, "/assign"), json={"assignee_id": tenant.viewer.id}, headers=h
    )
    expect_error(inactive, 409, "assignee_inactive")


async def test_status_changes(tenant: TenantCtx) -> None:
    conv = (await inbound(tenant))["conversation_id"]
    h = tenant.agent.headers
    pending = expect(
        await tenant.client.patch(_url(conv), json={"status": "pending"}, headers=h), 200
    )
    assert pending["status"] == "pending"
    error = expect_error(
        await tenant.client.patch(_url(conv), json={"status": "snoozed"}, headers=h), 422
    )
    assert "snoozed_until" in str(error["details"])
    until = "2030-05-01T08:00:00+00:00"
    snoozed = expect(
        await tenant.client.patch(
            _url(conv), json={"status": "snoozed", "snoozed_until": until}, headers=h
        ),
        200,
    )
    assert snoozed["status"] == "snoozed"
    assert snoozed["snoozed_until"].startswith("2030-05-01T08:00:00")
    naive = await tenant.client.patch(
        _url(conv), json={"status": "snoozed", "snoozed_until": "2030-05-01T08:00:00"}, headers=h
    )
    expect_error(naive, 422)
    opened = expect(await tenant.client.patch(_url(conv), json={"status": "open"}, headers=h), 200)
    assert opened["snoozed_until"] is None
    tagged = expect(
        await tenant.client.patch(
            _url(conv), json={"tags": ["b", "a", "b"], "priority": "high"}, headers=h
        ),
        200,
    )
    assert tagged["tags"] == ["b", "a"]
    assert tagged["priority"] == "high"
    expect_error(
        await tenant.client.patch(_url(conv), json={"status": None}, headers=h),
        400,
        "null_not_allowed",
    )
    resolved = expect(
        await tenant.client.patch(_url(conv), json={"status": "resolved"}, headers=h), 200
    )
    assert resolved["status"] == "resolved"


async def test_reopen_conflicts_with_a_newer_open_thread(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    old = (await inbound(tenant, external_id="r"))["conversation_id"]
    expect(await tenant.client.patch(_url(old), json={"status": "resolved"}, headers=h), 200)
    new = (await inbound(tenant, external_id="r"))["conversation_id"]
    assert new != old
    expect_error(
        await tenant.client.patch(_url(old), json={"status": "open"}, headers=h),
        409,
        "open_conversation_exists",
    )
    assert (await get_json(tenant, _url(old)))["status"] == "resolved"


async def test_merge_moves_messages_notes_and_ticket_links(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    web = (await create_channel(tenant, "web", "Web"))["id"]
    target = (await inbound(tenant, external_id="m", text="first"))["conversation_id"]
    source = (await inbound(tenant, external_id="m", text="second", channel_id=web))[
        "conversation_id"
    ]
    expect(
        await tenant.client.post(_url(source, "/notes"), json={"body": "from source"}, headers=h),
        201,
    )
    ticket = (await create_ticket(tenant, conversation_id=source))["id"]
    merged = expect(
        await tenant.client.post(
            "/v1/conversations/merge", json={"target_id": target, "source_ids": [source]}, headers=h
        ),
        200,
    )
    assert merged["id"] == target
    assert merged["message_count"] == 2
    detail = await get_json(tenant, _url(target))
    assert sorted(m["text"] for m in detail["messages"]) == ["first", "second"]
    assert [n["body"] for n in detail["notes"]] == ["from source"]
    assert detail["ticket_ids"] == [ticket]
    assert (await get_json(tenant, f"/v1/tickets/{ticket}"))["conversation_ids"] == [target]
    gone = await get_json(tenant, _url(source))
    assert (gone["status"], gone["merged_into_id"], gone["message_count"]) == (
        "resolved",
        target,
        0,
    )
    assert gone["messages"] == []
    assert gone["ticket_ids"] == []
    expect_error(
        await tenant.client.post(_url(source, "/messages"), json={"text": "late"}, headers=h),
        409,
        "conversation_merged",
    )
    again = await tenant.client.post(
        "/v1/conversations/merge", json={"target_id": target, "source_ids": [source]}, headers=h
    )
    expect_error(again, 409, "already_merged")
    into_self = await tenant.client.post(
        "/v1/conversations/merge", json={"target_id": target, "source_ids": [target]}, headers=h
    )
    expect_error(into_self, 400, "same_conversation")
    events = expect(await tenant.client.get(f"/v1/tickets/{ticket}/events", headers=h), 200)
    assert events[-1]["event_type"] == "ticket.conversation_linked"
    # A merged thread stays closed: reopened, it would take new messages but refuse replies.
    reopen = await tenant.client.patch(_url(source), json={"status": "open"}, headers=h)
    expect_error(reopen, 409, "conversation_merged")
    later = await inbound(tenant, external_id="m", text="third", channel_id=web)
    assert later["conversation_id"] not in (source, target)


async def test_merge_is_all_or_nothing(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    target = (await inbound(tenant, external_id="t1"))["conversation_id"]
    fine = (await inbound(tenant, external_id="t2"))["conversation_id"]
    already = (await inbound(tenant, external_id="t3"))["conversation_id"]
    expect(
        await tenant.client.post(
            "/v1/conversations/merge",
            json={"target_id": target, "source_ids": [already]},
            headers=h,
        ),
        200,
    )
    failed = await tenant.client.post(
        "/v1/conversations/merge",
        json={"target_id": target, "source_ids": [fine, already]},
        headers=h,
    )
    expect_error(failed, 409, "already_merged")
    untouched = await get_json(tenant, _url(fine))
    assert untouched["merged_into_id"] is None
    assert untouched["message_count"] == 1
    assert (await get_json(tenant, _url(target)))["message_count"] == 2
