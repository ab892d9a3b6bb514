"""The event store and outbox: written atomically with each change, append-only, relayed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from api.errors import Conflict
from api.schemas.customers import CustomerCreate
from api.services import customers as customer_service
from api.services import tickets as ticket_service
from core.db.types import uuid7
from core.domain.customers import Customer
from core.domain.tenancy import Tenant
from core.domain.tickets import Ticket
from core.events.bus import InMemoryEventBus
from core.events.store import EventContext, EventRecord, EventRecorder, OutboxRecord
from core.events.types import DomainEvent
from tests.conftest import client_for
from tests.factories import (
    Backend,
    TenantCtx,
    count_rows,
    create_customer,
    create_ticket,
    expect,
    expect_error,
    inbound,
)


async def _counts(t: TenantCtx) -> tuple[int, int]:
    runtime, tenant_id = t.backend.runtime, uuid.UUID(t.id)
    return (
        await count_rows(runtime, EventRecord.id, EventRecord.tenant_id == tenant_id),
        await count_rows(runtime, OutboxRecord.id, OutboxRecord.tenant_id == tenant_id),
    )


async def test_a_change_writes_its_event_and_outbox_row(tenant: TenantCtx) -> None:
    before = await _counts(tenant)
    customer = await create_customer(tenant, name="Eve", email="eve@example.test")
    assert await _counts(tenant) == (before[0] + 1, before[1] + 1)
    async with tenant.backend.runtime.sessions() as session:
        event = await session.scalar(
            select(EventRecord).where(EventRecord.aggregate_id == uuid.UUID(customer["id"]))
        )
        assert event is not None
        outbox = await session.scalar(select(OutboxRecord).where(OutboxRecord.event_id == event.id))
    assert event.event_type == "customer.created"
    assert event.aggregate_version == 1
    assert event.payload == {"name": "Eve", "email": "eve@example.test", "phone": None}
    assert outbox is not None
    assert outbox.topic == "domain.events"
    assert outbox.key == customer["id"]
    assert outbox.published_at is None
    assert outbox.attempts == 0
    envelope = outbox.payload
    assert envelope["schema_version"] == 1
    assert envelope["event_id"] == str(event.id)
    assert envelope["event_type"] == "customer.created"
    assert envelope["tenant_id"] == tenant.id
    assert envelope["data"] == event.payload
    assert outbox.headers["event_type"] == "customer.created"


async def test_a_failed_commit_leaves_neither_event_nor_outbox(tenant: TenantCtx) -> None:
    await create_customer(tenant, email="taken@example.test")
    before = await _counts(tenant)
    runtime, tenant_id = tenant.backend.runtime, uuid.UUID(tenant.id)
    async with runtime.sessions() as session:
        recorder = EventRecorder(session, EventContext(actor_type="user", actor_id=tenant.agent.id))
        with pytest.raises(Conflict) as caught:
            await customer_service.create_customer(
                session,
                recorder,
                tenant_id,
                CustomerCreate(name="Collides", email="TAKEN@example.test"),
            )
    assert caught.value.code == "duplicate_identity"
    assert await _counts(tenant) == before
    assert (
        await count_rows(
            runtime, Customer.id, Customer.tenant_id == tenant_id, Customer.name == "Collides"
        )
        == 0
    )
    # The same through the API.
    response = await tenant.client.post(
        "/v1/customers",
        json={"name": "Collides", "email": "taken@example.test"},
        headers=tenant.agent.headers,
    )
    expect_error(response, 409, "duplicate_identity")
    assert await _counts(tenant) == before


async def test_an_error_after_recording_rolls_everything_back(
    tenant: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = (await inbound(tenant))["conversation_id"]
    before = await _counts(tenant)
    runtime, tenant_id = tenant.backend.runtime, uuid.UUID(tenant.id)

    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("link storage failed")

    # ticket.created is recorded, then linking the conversation fails before the commit.
    monkeypatch.setattr(ticket_service, "_link", explode)
    async with client_for(runtime, raise_app_exceptions=False) as client:
        response = await client.post(
            "/v1/tickets",
            json={"subject": "Doomed", "conversation_id": conversation},
            headers=tenant.agent.headers,
        )
    error = expect_error(response, 500, "internal_error")
    assert "link storage" not in error["message"]  # internals are logged, not returned
    assert await _counts(tenant) == before
    assert await count_rows(runtime, Ticket.id, Ticket.tenant_id == tenant_id) == 0
    monkeypatch.undo()
    # The ticket number was not consumed either.
    assert (await create_ticket(tenant))["number"] == 1
    async with runtime.sessions() as session:
        assert (await session.get(Tenant, tenant_id)).next_ticket_number == 2  # type: ignore[union-attr]


async def test_events_are_append_only(tenant: TenantCtx) -> None:
    await create_customer(tenant)
    runtime, tenant_id = tenant.backend.runtime, uuid.UUID(tenant.id)
    statements = [
        update(EventRecord).where(EventRecord.tenant_id == tenant_id).values(event_type="forged"),
        delete(EventRecord).where(EventRecord.tenant_id == tenant_id),
    ]
    for statement in statements:
        async with runtime.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(statement)
            await session.rollback()
    async with runtime.sessions() as session:
        types = (
            await session.scalars(
                select(EventRecord.event_type).where(EventRecord.tenant_id == tenant_id)
            )
        ).all()
    assert list(types) == ["customer.created"]


async def test_event_versions_are_dense_per_aggregate(tenant: TenantCtx) -> None:
    conversation = (await inbound(tenant, text="one"))["conversation_id"]
    await asyncio.gather(*(inbound(tenant, text=f"more {i}") for i in range(5)))
    for text in ("reply a", "reply b"):
        expect(
            await tenant.client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"text": text},
                headers=tenant.agent.headers,
            ),
            201,
        )
    async with tenant.backend.runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(EventRecord)
                .where(EventRecord.aggregate_id == uuid.UUID(conversation))
                .order_by(EventRecord.aggregate_version)
            )
        ).all()
    assert [r.aggregate_version for r in rows] == list(range(1, len(rows) + 1))
    kinds = [r.event_type for r in rows]
    assert kinds[0] == "conversation.opened"
    assert kinds.count("message.received") == 6
    assert kinds.count("message.sent") == 2


async def test_relay_publishes_the_outbox_in_order(tenant: TenantCtx) -> None:
    runtime = tenant.backend.runtime
    assert isinstance(runtime.bus, InMemoryEventBus)
    received = await inbound(tenant, text="relay me")
    await runtime.relay.drain()
    ours = [m for m in runtime.bus.published if m.value["tenant_id"] == tenant.id]
    assert [m.value["event_type"] for m in ours] == [
        "customer.created",
        "conversation.opened",
        "message.received",
    ]
    message = ours[-1]
    assert message.topic == "messages.received"
    assert message.key == str(received["conversation_id"])
    assert message.value["data"]["message_id"] == received["message"]["id"]
    assert message.value["data"]["text"] == "relay me"
    async with runtime.sessions() as session:
        pending = await session.scalar(
            select(OutboxRecord.id).where(
                OutboxRecord.tenant_id == uuid.UUID(tenant.id), OutboxRecord.published_at.is_(None)
            )
        )
    assert pending is None
    assert await runtime.relay.drain() == 0  # nothing is published twice


async def test_app_lifespan_runs_the_relay(backend: Backend, tenant: TenantCtx) -> None:
    # An app that owns its runtime starts the relay on startup and stops it on shutdown.
    app = create_app(settings=backend.settings)
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        async with client_for(runtime) as client:
            body = {
                "channel_id": tenant.channel_id,
                "customer": {"external_id": "lifespan"},
                "text": "wake the relay",
                "provider_message_id": uuid.uuid4().hex,
            }
            result = expect(
                await client.post("/v1/inbound", json=body, headers=tenant.key_headers), 201
            )
        for _ in range(100):
            if any(
                m.value["data"].get("message_id") == result["message"]["id"]
                for m in runtime.bus.published
            ):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the relay did not publish the message within 5 s")
    assert runtime.relay._task is None  # stopped with the app


async def _record(recorder: EventRecorder, tenant_id: uuid.UUID) -> uuid.UUID:
    aggregate_id = uuid7()
    await recorder.record(
        DomainEvent.CUSTOMER_CREATED,
        tenant_id=tenant_id,
        aggregate_type="customer",
        aggregate_id=aggregate_id,
        payload={},
        first=True,
    )
    return aggregate_id


async def test_events_of_a_rolled_back_savepoint_or_transaction_are_not_written(
    tenant: TenantCtx,
) -> None:
    """Rows are written as their transaction or savepoint commits: what a rollback undid
    never reaches the store, what came before or after it does."""
    runtime, tenant_id = tenant.backend.runtime, uuid.UUID(tenant.id)
    async with runtime.sessions() as session:
        recorder = EventRecorder(session, EventContext(actor_type="system", actor_id="test"))
        rolled_back = await _record(recorder, tenant_id)
        await session.rollback()
        before = await _record(recorder, tenant_id)
        savepoint = await session.begin_nested()
        undone = await _record(recorder, tenant_id)
        await savepoint.rollback()
        async with session.begin_nested():
            inside = await _record(recorder, tenant_id)
        after = await _record(recorder, tenant_id)
        await session.commit()
        written = set(
            (
                await session.scalars(
                    select(EventRecord.aggregate_id).where(EventRecord.tenant_id == tenant_id)
                )
            ).all()
        )
    assert written == {before, inside, after}
    assert {rolled_back, undone}.isdisjoint(written)
    assert await _counts(tenant) == (3, 3)
