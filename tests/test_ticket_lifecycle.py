"""Tickets: numbering, every status transition, optimistic locking, history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from api.errors import Conflict
from api.schemas.tickets import TicketUpdate
from api.services import tickets as ticket_service
from core.domain.enums import TICKET_TRANSITIONS, TicketStatus
from core.domain.tickets import Ticket
from core.events.store import EventContext, EventRecorder
from tests.factories import TenantCtx, create_ticket, expect, expect_error

# The shortest legal path from `new` to each status.
PATH_TO = {
    TicketStatus.NEW: [],
    TicketStatus.OPEN: [TicketStatus.OPEN],
    TicketStatus.PENDING: [TicketStatus.PENDING],
    TicketStatus.ON_HOLD: [TicketStatus.ON_HOLD],
    TicketStatus.SOLVED: [TicketStatus.SOLVED],
    TicketStatus.CLOSED: [TicketStatus.SOLVED, TicketStatus.CLOSED],
}


async def _patch(t: TenantCtx, ticket_id: str, **body: object):
    return await t.client.patch(f"/v1/tickets/{ticket_id}", json=body, headers=t.agent.headers)


async def _ticket_in(t: TenantCtx, status: TicketStatus) -> dict[str, Any]:
    ticket = await create_ticket(t)
    for step in PATH_TO[status]:
        ticket = expect(await _patch(t, ticket["id"], status=step.value), 200)
    assert ticket["status"] == status.value
    return ticket


@pytest.mark.parametrize("source", list(TicketStatus), ids=lambda s: s.value)
async def test_every_transition_from(tenant: TenantCtx, source: TicketStatus) -> None:
    allowed = TICKET_TRANSITIONS[source]
    stuck = await _ticket_in(tenant, source)
    for target in TicketStatus:
        if target is source:
            continue
        if target in allowed:
            ticket = await _ticket_in(tenant, source)
            moved = expect(await _patch(tenant, ticket["id"], status=target.value), 200)
            assert moved["status"] == target.value
            assert moved["version"] == ticket["version"] + 1
            # A closed ticket was solved first and keeps when; any other move unsolves it.
            solved = target in (TicketStatus.SOLVED, TicketStatus.CLOSED)
            assert (moved["solved_at"] is not None) == solved
            assert (moved["closed_at"] is not None) == (target is TicketStatus.CLOSED)
        else:
            error = expect_error(
                await _patch(tenant, stuck["id"], status=target.value), 409, "illegal_transition"
            )
            assert error["details"] == {
                "from": source.value,
                "to": target.value,
                "allowed": sorted(s.value for s in allowed),
            }
    # Refused moves left no trace.
    after = expect(
        await tenant.client.get(f"/v1/tickets/{stuck['id']}", headers=tenant.viewer.headers), 200
    )
    assert after["status"] == source.value
    assert after["version"] == stuck["version"]


async def test_setting_the_same_status_is_a_no_op(tenant: TenantCtx) -> None:
    ticket = await _ticket_in(tenant, TicketStatus.CLOSED)
    same = expect(await _patch(tenant, ticket["id"], status="closed"), 200)
    assert same["version"] == ticket["version"]


def test_closed_is_final_and_every_status_is_reachable() -> None:
    assert TICKET_TRANSITIONS[TicketStatus.CLOSED] == frozenset()
    reachable = {TicketStatus.NEW}
    for _ in TicketStatus:
        reachable |= {t for s in reachable for t in TICKET_TRANSITIONS[s]}
    assert reachable == set(TicketStatus)


async def test_reopening_a_solved_ticket_clears_solved_at(tenant: TenantCtx) -> None:
    ticket = await _ticket_in(tenant, TicketStatus.SOLVED)
    assert ticket["solved_at"] is not None
    reopened = expect(await _patch(tenant, ticket["id"], status="open"), 200)
    assert reopened["solved_at"] is None


async def test_numbers_are_sequential_per_tenant(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    numbers = [(await create_ticket(tenant))["number"] for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert (await create_ticket(other_tenant))["number"] == 1


async def test_concurrent_creates_get_distinct_numbers(tenant: TenantCtx) -> None:
    created = await asyncio.gather(*(create_ticket(tenant) for _ in range(10)))
    assert sorted(t["number"] for t in created) == list(range(1, 11))


@pytest.mark.parametrize("status", ["solved", "closed"])
async def test_a_ticket_cannot_start_solved(tenant: TenantCtx, status: str) -> None:
    response = await tenant.client.post(
        "/v1/tickets", json={"subject": "x", "status": status}, headers=tenant.agent.headers
    )
    expect_error(response, 400, "invalid_initial_status")


async def test_subject_is_required_without_a_conversation(tenant: TenantCtx) -> None:
    response = await tenant.client.post("/v1/tickets", json={}, headers=tenant.agent.headers)
    expect_error(response, 400, "subject_required")


async def test_stale_version_is_409(tenant: TenantCtx) -> None:
    ticket = await create_ticket(tenant)
    expect(await _patch(tenant, ticket["id"], version=1, priority="high"), 200)
    error = expect_error(
        await _patch(tenant, ticket["id"], version=1, priority="low"), 409, "version_conflict"
    )
    assert error["details"] == {"current_version": 2}
    current = expect(
        await tenant.client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.viewer.headers), 200
    )
    assert current["priority"] == "high"
    assert current["version"] == 2


async def test_concurrent_updates_with_the_same_version(tenant: TenantCtx) -> None:
    ticket = await create_ticket(tenant)
    responses = await asyncio.gather(
        _patch(tenant, ticket["id"], version=1, priority="high", tags=["a"]),
        _patch(tenant, ticket["id"], version=1, priority="low", tags=["b"]),
    )
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()
    expect_error(next(r for r in responses if r.status_code == 409), 409, "version_conflict")
    current = expect(
        await tenant.client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.viewer.headers), 200
    )
    assert current["version"] == 2
    assert (current["priority"], current["tags"]) == (winner["priority"], winner["tags"])
    events = expect(
        await tenant.client.get(
            f"/v1/tickets/{ticket['id']}/events", headers=tenant.viewer.headers
        ),
        200,
    )
    assert [e["event_type"] for e in events] == ["ticket.created", "ticket.updated"]


async def test_update_from_a_stale_session_is_a_version_conflict(tenant: TenantCtx) -> None:
    """Two sessions hold version 1; the second write finds the row moved on (StaleDataError)."""
    runtime = tenant.backend.runtime
    ticket = await create_ticket(tenant)
    async with runtime.sessions() as stale:
        loaded = await stale.get(Ticket, uuid.UUID(ticket["id"]))
        assert loaded is not None
        assert loaded.version == 1
        await stale.commit()  # end the read (SQLite holds its write lock for a whole transaction)
        expect(await _patch(tenant, ticket["id"], priority="urgent"), 200)
        recorder = EventRecorder(stale, EventContext(actor_type="user", actor_id=tenant.agent.id))
        with pytest.raises(Conflict) as caught:
            await ticket_service.update_ticket(
                stale, recorder, uuid.UUID(tenant.id), loaded.id, TicketUpdate(priority="low")
            )
        assert caught.value.code == "version_conflict"
    current = expect(
        await tenant.client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.viewer.headers), 200
    )
    assert current["priority"] == "urgent"
    assert current["version"] == 2


async def test_null_for_a_required_field_is_400(tenant: TenantCtx) -> None:
    ticket = await create_ticket(tenant)
    expect_error(await _patch(tenant, ticket["id"], status=None), 400, "null_not_allowed")
    expect_error(await _patch(tenant, ticket["id"], subject=None), 400, "null_not_allowed")


async def test_history_records_each_kind_of_change(tenant: TenantCtx) -> None:
    ticket = await create_ticket(tenant, tags=["a", "a", "b"])
    assert ticket["tags"] == ["a", "b"]
    correlation = uuid.uuid4().hex
    expect(
        await tenant.client.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"status": "open", "assignee_id": tenant.agent.id, "priority": "high"},
            headers={**tenant.agent.headers, "X-Request-ID": correlation},
        ),
        200,
    )
    # A change that changes nothing records nothing.
    expect(await _patch(tenant, ticket["id"], priority="high"), 200)
    events = expect(
        await tenant.client.get(
            f"/v1/tickets/{ticket['id']}/events", headers=tenant.viewer.headers
        ),
        200,
    )
    assert [e["event_type"] for e in events] == [
        "ticket.created",
        "ticket.status_changed",
        "ticket.assigned",
        "ticket.updated",
    ]
    assert [e["aggregate_version"] for e in events] == [1, 2, 3, 4]
    assert events[1]["payload"] == {"number": ticket["number"], "from": "new", "to": "open"}
    assert events[2]["payload"]["assignee_id"] == tenant.agent.id
    assert events[3]["payload"]["priority"] == "high"
    same_request = events[1:]
    assert {e["correlation_id"] for e in same_request} == {correlation}
    assert all(e["actor_type"] == "user" and e["actor_id"] == tenant.agent.id for e in events)
    # Within one request each event is caused by the one before it.
    assert [e["causation_id"] for e in same_request] == [None, events[1]["id"], events[2]["id"]]
