"""Customers: create, look up, resolve from a channel identity, and merge duplicates."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict
from api.schemas.customers import CustomerCreate, CustomerUpdate, normalize_identity
from core.domain.conversations import Conversation
from core.domain.customers import Customer, CustomerIdentity
from core.domain.enums import IdentityKind
from core.domain.tickets import Ticket
from core.events.store import EventRecorder
from core.events.types import DomainEvent

from .common import get_owned


def _snapshot(customer: Customer) -> dict[str, object]:
    return {"name": customer.name, "email": customer.email, "phone": customer.phone}


def _identities_of(data: CustomerCreate) -> list[tuple[IdentityKind, str]]:
    found = [(i.kind, normalize_identity(i.kind, i.value)) for i in data.identities]
    if data.email:
        found.append((IdentityKind.EMAIL, normalize_identity(IdentityKind.EMAIL, str(data.email))))
    if data.phone:
        found.append((IdentityKind.PHONE, normalize_identity(IdentityKind.PHONE, data.phone)))
    return list(dict.fromkeys(found))


async def create_customer(
    session: AsyncSession, recorder: EventRecorder, tenant_id: uuid.UUID, data: CustomerCreate
) -> Customer:
    customer = Customer(
        tenant_id=tenant_id,
        name=data.name,
        email=str(data.email).lower() if data.email else None,
        phone=data.phone,
        attributes=data.attributes,
    )
    session.add(customer)
    await session.flush()
    for kind, value in _identities_of(data):
        session.add(
            CustomerIdentity(tenant_id=tenant_id, customer_id=customer.id, kind=kind, value=value)
        )
    await recorder.record(
        DomainEvent.CUSTOMER_CREATED,
        tenant_id=tenant_id,
        aggregate_type="customer",
        aggregate_id=customer.id,
        payload=_snapshot(customer),
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(
            "another customer already has one of these identities", code="duplicate_identity"
        ) from exc
    await session.refresh(customer, ["identities"])
    return customer


async def update_customer(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    data: CustomerUpdate,
) -> Customer:
    customer = await get_owned(session, Customer, customer_id, tenant_id, what="customer")
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "attributes"):
        # A JSON null would be stored as such and break every later read of the customer.
        if required in changes and changes[required] is None:
            raise BadRequest(f"{required} cannot be null", code="null_not_allowed")
    for name, value in changes.items():
        if name == "email" and value is not None:
            value = str(value).lower()
        if name == "attributes" and value is not None:
            value = {**customer.attributes, **value}
        setattr(customer, name, value)
    await session.flush()
    await _claim_identities(session, customer, changes)
    await recorder.record(
        DomainEvent.CUSTOMER_UPDATED,
        tenant_id=tenant_id,
        aggregate_type="customer",
        aggregate_id=customer.id,
        payload={"changed": sorted(changes)},
    )
    await session.commit()
    await session.refresh(customer, ["identities"])
    return customer


async def _claim_identities(
    session: AsyncSession, customer: Customer, changes: dict[str, object]
) -> None:
    """A new email or phone becomes an identity of this customer, so channel messages from
    it resolve here; one that belongs to another customer is a conflict, not a silent
    second match. Old identities stay: the customer may still write from them."""
    wanted = []
    if changes.get("email"):
        wanted.append(
            (IdentityKind.EMAIL, normalize_identity(IdentityKind.EMAIL, str(changes["email"])))
        )
    if changes.get("phone"):
        wanted.append(
            (IdentityKind.PHONE, normalize_identity(IdentityKind.PHONE, str(changes["phone"])))
        )
    for kind, value in wanted:
        owner = await session.scalar(
            select(CustomerIdentity.customer_id).where(
                CustomerIdentity.tenant_id == customer.tenant_id,
                CustomerIdentity.kind == kind,
                CustomerIdentity.value == value,
            )
        )
        if owner is None:
            session.add(
                CustomerIdentity(
                    tenant_id=customer.tenant_id, customer_id=customer.id, kind=kind, value=value
                )
            )
        elif owner != customer.id:
            await session.rollback()
            raise Conflict(
                f"{kind.value} {value} belongs to customer {owner}; merge the two instead",
                code="duplicate_identity",
                details={"customer_id": str(owner)},
            )
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("another customer took this identity", code="duplicate_identity") from exc


def customer_query(
    tenant_id: uuid.UUID, *, email: str | None, phone: str | None, q: str | None
) -> Select[Customer]:
    query = select(Customer).where(
        Customer.tenant_id == tenant_id, Customer.merged_into_id.is_(None)
    )
    if email:
        email = email.strip().lower()
        query = query.where(
            or_(
                Customer.email == email,
                Customer.id.in_(
                    select(CustomerIdentity.customer_id).where(
                        CustomerIdentity.tenant_id == tenant_id,
                        CustomerIdentity.kind == IdentityKind.EMAIL,
                        CustomerIdentity.value == email,
                    )
                ),
            )
        )
    if phone:
        digits = normalize_identity(IdentityKind.PHONE, phone)
        query = query.where(
            or_(
                Customer.phone == phone,
                Customer.id.in_(
                    select(CustomerIdentity.customer_id).where(
                        CustomerIdentity.tenant_id == tenant_id,
                        CustomerIdentity.kind.in_([IdentityKind.PHONE, IdentityKind.WHATSAPP]),
                        CustomerIdentity.value == digits,
                    )
                ),
            )
        )
    if q:
        pattern = f"%{q.strip().lower()}%"
        query = query.where(or_(Customer.name.ilike(pattern), Customer.email.ilike(pattern)))
    return query


async def merge_customers(
    session: AsyncSession,
    recorder: EventRecorder,
    tenant_id: uuid.UUID,
    target_id: uuid.UUID,
    source_id: uuid.UUID,
) -> Customer:
    """Fold `source` into `target`: identities, conversations and tickets move; the source
    row remains, pointing at the target, so old references still resolve."""
    if target_id == source_id:
        raise BadRequest("a customer cannot be merged into itself", code="same_customer")
    target = await get_owned(session, Customer, target_id, tenant_id, what="customer")
    source = await get_owned(session, Customer, source_id, tenant_id, what="customer")
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise Conflict("one of these customers was already merged", code="already_merged")
    moved = {"customer_id": target.id}
    await session.execute(
        update(CustomerIdentity).where(CustomerIdentity.customer_id == source.id).values(moved)
    )
    # Both customers may have an open thread on the same channel; the source's is resolved
    # first so the one-open-thread rule still holds after the move.
    open_target_channels = select(Conversation.channel_id).where(
        Conversation.customer_id == target.id,
        Conversation.status.in_(["open", "pending", "snoozed"]),
    )
    await session.execute(
        update(Conversation)
        .where(
            Conversation.customer_id == source.id,
            Conversation.status.in_(["open", "pending", "snoozed"]),
            Conversation.channel_id.in_(open_target_channels),
        )
        .values(status="resolved")
    )
    await session.execute(
        update(Conversation).where(Conversation.customer_id == source.id).values(moved)
    )
    await session.execute(
        update(Ticket)
        .where(Ticket.requester_id == source.id)
        .values(requester_id=target.id)
        .execution_options(synchronize_session=False)
    )
    target.email = target.email or source.email
    target.phone = target.phone or source.phone
    target.name = target.name or source.name
    target.attributes = {**source.attributes, **target.attributes}
    source.merged_into_id = target.id
    await session.flush()
    await recorder.record(
        DomainEvent.CUSTOMER_MERGED,
        tenant_id=tenant_id,
        aggregate_type="customer",
        aggregate_id=target.id,
        payload={"source_id": str(source.id)},
    )
    await session.commit()
    await session.refresh(target, ["identities"])
    return target
