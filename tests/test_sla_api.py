"""SLA through the API: due times from the tenant's default policy, breaches, first response."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update

from core.domain.sla import due_at
from core.domain.tickets import Ticket
from tests.factories import TenantCtx, create_sla_policy, create_ticket, expect, get_json, inbound

MADRID_HOURS = {
    "timezone": "Europe/Madrid",
    "hours": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-25", "2027-01-01"],
}
TARGETS = {
    "normal": {"first_response_minutes": 60, "resolution_minutes": 600},
    "urgent": {"first_response_minutes": 15, "resolution_minutes": 120},
}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _age(t: TenantCtx, ticket_id: str, delta: timedelta) -> None:
    """Make a ticket `delta` older, as if that much time had passed since it was created."""
    async with t.backend.runtime.sessions() as session:
        ticket = await session.get(Ticket, uuid.UUID(ticket_id))
        assert ticket is not None
        assert ticket.first_response_due_at
        assert ticket.resolution_due_at
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(
                created_at=ticket.created_at - delta,
                first_response_due_at=ticket.first_response_due_at - delta,
                resolution_due_at=ticket.resolution_due_at - delta,
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()


async def test_due_times_follow_the_business_calendar(tenant: TenantCtx) -> None:
    policy = await create_sla_policy(tenant, targets=TARGETS, business_hours=MADRID_HOURS)
    assert policy["business_hours"]["timezone"] == "Europe/Madrid"
    ticket = await create_ticket(tenant)
    sla = ticket["sla"]
    assert sla["policy_id"] == policy["id"]
    assert sla["state"] == "active"
    created = _at(ticket["created_at"])
    first, resolution = _at(sla["first_response_due_at"]), _at(sla["resolution_due_at"])
    assert first == due_at(created, 60, MADRID_HOURS)
    assert resolution == due_at(created, 600, MADRID_HOURS)
    for due in (first, resolution):
        local = due.astimezone(ZoneInfo("Europe/Madrid"))
        assert local.weekday() < 5, local
        assert 9 <= local.hour + local.minute / 60 <= 17, local
        assert local.date().isoformat() not in MADRID_HOURS["holidays"]
    assert first >= created + timedelta(minutes=60)
    # 600 working minutes are more than one 8-hour day.
    assert resolution - first >= timedelta(minutes=540)


async def test_around_the_clock_policy_and_priorities(tenant: TenantCtx) -> None:
    await create_sla_policy(tenant, targets=TARGETS)
    normal = await create_ticket(tenant)
    created = _at(normal["created_at"])
    assert _at(normal["sla"]["first_response_due_at"]) == created + timedelta(minutes=60)
    assert _at(normal["sla"]["resolution_due_at"]) == created + timedelta(minutes=600)
    urgent = expect(
        await tenant.client.patch(
            f"/v1/tickets/{normal['id']}", json={"priority": "urgent"}, headers=tenant.agent.headers
        ),
        200,
    )
    assert _at(urgent["sla"]["first_response_due_at"]) == created + timedelta(minutes=15)
    low = await create_ticket(tenant, priority="low")  # no target for low
    assert low["sla"] == {
        "policy_id": None,
        "first_response_due_at": None,
        "resolution_due_at": None,
        "first_responded_at": None,
        "first_response_breached": False,
        "resolution_breached": False,
        "state": "none",
    }


async def test_no_policy_means_no_sla(tenant: TenantCtx) -> None:
    assert (await create_ticket(tenant))["sla"]["state"] == "none"


async def test_breach_is_recorded_and_shown(tenant: TenantCtx) -> None:
    await create_sla_policy(tenant, targets=TARGETS)
    ticket = await create_ticket(tenant)
    await _age(tenant, ticket["id"], timedelta(hours=2))
    # Between changes the breach is judged live on every read (the stored flag is still off)...
    live = await get_json(tenant, f"/v1/tickets/{ticket['id']}")
    assert live["sla"]["state"] == "breached"
    assert live["sla"]["first_response_breached"] is True
    assert live["sla"]["resolution_breached"] is False
    # ...and the next change stores it and announces it once.
    for tags in (["x"], ["y"]):
        expect(
            await tenant.client.patch(
                f"/v1/tickets/{ticket['id']}", json={"tags": tags}, headers=tenant.agent.headers
            ),
            200,
        )
    events = await get_json(tenant, f"/v1/tickets/{ticket['id']}/events")
    breaches = [e for e in events if e["event_type"] == "ticket.sla_breached"]
    assert len(breaches) == 1
    assert breaches[0]["payload"]["first_response_breached"] is True
    listed = await get_json(tenant, "/v1/tickets")
    assert listed["items"][0]["sla"]["state"] == "breached"
    async with tenant.backend.runtime.sessions() as session:
        stored = await session.get(Ticket, uuid.UUID(ticket["id"]))
    assert stored is not None
    assert stored.first_response_breached
    assert not stored.resolution_breached


async def test_agent_reply_records_the_first_response(tenant: TenantCtx) -> None:
    await create_sla_policy(tenant, targets=TARGETS)
    conversation = (await inbound(tenant, text="help"))["conversation_id"]
    ticket = await create_ticket(tenant, conversation_id=conversation)
    assert ticket["sla"]["first_responded_at"] is None
    reply = expect(
        await tenant.client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "Here to help"},
            headers=tenant.agent.headers,
        ),
        201,
    )
    answered = await get_json(tenant, f"/v1/tickets/{ticket['id']}")
    assert answered["sla"]["first_responded_at"] == reply["sent_at"]
    assert answered["sla"]["state"] == "active"
    assert answered["sla"]["first_response_breached"] is False
    # A second reply does not move it.
    expect(
        await tenant.client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "More"},
            headers=tenant.agent.headers,
        ),
        201,
    )
    assert (await get_json(tenant, f"/v1/tickets/{ticket['id']}"))["sla"][
        "first_responded_at"
    ] == reply["sent_at"]
    solved = expect(
        await tenant.client.patch(
            f"/v1/tickets/{ticket['id']}", json={"status": "solved"}, headers=tenant.agent.headers
        ),
        200,
    )
    assert solved["sla"]["state"] == "met"


async def test_first_response_carries_over_from_an_answered_conversation(tenant: TenantCtx) -> None:
    await create_sla_policy(tenant, targets=TARGETS)
    conversation = (await inbound(tenant))["conversation_id"]
    reply = expect(
        await tenant.client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "Hi"},
            headers=tenant.agent.headers,
        ),
        201,
    )
    from_conversation = await create_ticket(tenant, conversation_id=conversation)
    assert from_conversation["sla"]["first_responded_at"] == reply["sent_at"]
    standalone = await create_ticket(tenant)
    linked = expect(
        await tenant.client.post(
            f"/v1/tickets/{standalone['id']}/conversations",
            json={"conversation_id": conversation},
            headers=tenant.agent.headers,
        ),
        200,
    )
    assert linked["sla"]["first_responded_at"] == reply["sent_at"]
    assert linked["conversation_ids"] == [conversation]


async def test_one_default_policy_and_pinned_tickets(tenant: TenantCtx) -> None:
    first = await create_sla_policy(tenant, name="First", targets=TARGETS)
    ticket = await create_ticket(tenant)
    second = await create_sla_policy(
        tenant,
        name="Second",
        targets={"normal": {"first_response_minutes": 5, "resolution_minutes": 10}},
    )
    policies = {p["name"]: p for p in await get_json(tenant, "/v1/sla-policies")}
    assert policies["First"]["is_default"] is False
    assert policies["Second"]["is_default"] is True
    newer = await create_ticket(tenant)
    assert newer["sla"]["policy_id"] == second["id"]
    # A running ticket keeps the policy it started with, even through later changes.
    changed = expect(
        await tenant.client.patch(
            f"/v1/tickets/{ticket['id']}", json={"tags": ["later"]}, headers=tenant.agent.headers
        ),
        200,
    )
    assert changed["sla"]["policy_id"] == first["id"]
    assert changed["sla"]["first_response_due_at"] == ticket["sla"]["first_response_due_at"]


async def test_policy_update_and_delete(tenant: TenantCtx) -> None:
    policy = await create_sla_policy(tenant, targets=TARGETS, business_hours=MADRID_HOURS)
    h = tenant.key_headers
    body: dict[str, Any] = {"name": "Renamed", "business_hours": None}
    patched = expect(
        await tenant.client.patch(f"/v1/sla-policies/{policy['id']}", json=body, headers=h), 200
    )
    assert patched["name"] == "Renamed"
    assert patched["business_hours"] is None
    assert patched["targets"] == TARGETS
    assert (
        await tenant.client.delete(f"/v1/sla-policies/{policy['id']}", headers=h)
    ).status_code == 204
    expect(await tenant.client.get(f"/v1/sla-policies/{policy['id']}", headers=h), 404)
    assert (await create_ticket(tenant))["sla"]["state"] == "none"
