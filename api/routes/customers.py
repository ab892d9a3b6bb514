"""Customers (contacts): CRUD, lookup by email or phone, and merge."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import Agent, ModelsDep, RecorderDep, SessionDep, SettingsDep, Viewer
from api.schemas.ai import ChurnPublic
from api.schemas.common import Page
from api.schemas.customers import CustomerCreate, CustomerMerge, CustomerPublic, CustomerUpdate
from api.services import churn, customers
from api.services.common import get_owned, keyset_page
from core.domain.customers import Customer
from core.events.types import DomainEvent

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("", response_model=Page[CustomerPublic])
async def list_customers(
    session: SessionDep,
    principal: Viewer,
    settings: SettingsDep,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=200, description="name or email contains")] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> dict[str, object]:
    """List customers, newest first; `email` and `phone` look one up by any identity."""
    query = customers.customer_query(principal.tenant_id, email=email, phone=phone, q=q)
    items, next_cursor = await keyset_page(
        session, query, Customer.id, cursor, limit or settings.api.page_size_default
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("", response_model=CustomerPublic, status_code=status.HTTP_201_CREATED)
async def create_customer(
    body: CustomerCreate, session: SessionDep, recorder: RecorderDep, principal: Agent
) -> Customer:
    """Create a customer; identities must not belong to another customer."""
    return await customers.create_customer(session, recorder, principal.tenant_id, body)


@router.get("/{customer_id}", response_model=CustomerPublic)
async def get_customer(customer_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Customer:
    """One customer with their identities."""
    return await get_owned(session, Customer, customer_id, principal.tenant_id, what="customer")


@router.patch("/{customer_id}", response_model=CustomerPublic)
async def update_customer(
    customer_id: uuid.UUID,
    body: CustomerUpdate,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> Customer:
    """Change name, email, phone; `attributes` are merged into the stored ones."""
    return await customers.update_customer(
        session, recorder, principal.tenant_id, customer_id, body
    )


@router.delete("/{customer_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_customer(
    customer_id: uuid.UUID, session: SessionDep, recorder: RecorderDep, principal: Agent
) -> None:
    """Erase a customer with their conversations and messages (right to be forgotten)."""
    customer = await get_owned(session, Customer, customer_id, principal.tenant_id, what="customer")
    await session.delete(customer)
    await recorder.record(
        DomainEvent.CUSTOMER_DELETED,
        tenant_id=principal.tenant_id,
        aggregate_type="customer",
        aggregate_id=customer_id,
        payload={},
    )
    await session.commit()


@router.post("/{customer_id}/merge", response_model=CustomerPublic)
async def merge_customer(
    customer_id: uuid.UUID,
    body: CustomerMerge,
    session: SessionDep,
    recorder: RecorderDep,
    principal: Agent,
) -> Customer:
    """Fold a duplicate (`source_id`) into this customer."""
    return await customers.merge_customers(
        session, recorder, principal.tenant_id, customer_id, body.source_id
    )


@router.get("/{customer_id}/churn", response_model=ChurnPublic)
async def customer_churn(
    customer_id: uuid.UUID, session: SessionDep, models: ModelsDep, principal: Viewer
) -> ChurnPublic:
    """Churn risk from the customer's last 30 days of support, with the factors behind it."""
    found = await churn.customer_churn(session, models, principal.tenant_id, customer_id)
    return ChurnPublic.model_validate(
        {
            "customer_id": customer_id,
            "probability": found.score.probability,
            "band": found.score.band,
            "factors": found.score.factors,
            "explanation": found.score.explanation,
            "signals": found.signals,
            "model_version": found.score.model_version,
            "notes": found.notes,
        },
        from_attributes=True,
    )
