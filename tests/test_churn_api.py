"""Churn: the scorer behind the port, and GET /v1/customers/{id}/churn with signals gathered
from the database (conversations, sentiment of recent messages, SLA, tickets) on both
backends."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.db.types import utcnow
from core.domain.conversations import Message
from core.domain.tickets import Ticket
from models.churn import score_churn
from models.service import SupportSignalsIn
from tests.factories import (
    TenantCtx,
    create_channel,
    create_customer,
    create_ticket,
    expect,
    expect_error,
    inbound,
)

QUIET = SupportSignalsIn(0, 0.0, 0, 0, None)
STORMY = SupportSignalsIn(8, 0.9, 3, 2, 0.5)

# The first test to use the shared analyzer may build the encoder and train the heads on a
# cold models cache (embedding the VADER texts once: minutes on two shared cores).
pytestmark = pytest.mark.timeout(900)


def test_score_is_explained_and_monotone() -> None:
    calm, stormy = score_churn(QUIET), score_churn(STORMY)
    assert (calm.band, stormy.band) == ("low", "high")
    assert calm.explanation == ("No recent support risk signals: baseline risk.",)
    assert len(stormy.explanation) == 3
    contributions = [f.contribution for f in stormy.factors]
    assert contributions == sorted(contributions, reverse=True)
    assert {f.name for f in stormy.factors} == {
        "contacts_30d",
        "negative_share",
        "sla_breaches_30d",
        "open_tickets",
        "days_since_last_contact",
    }
    assert stormy.explanation[0].startswith(
        {"negative_share": "90%", "sla_breaches_30d": "3 SLA", "contacts_30d": "8 support"}[
            stormy.factors[0].name
        ]
    )
    worse = score_churn(SupportSignalsIn(8, 0.9, 4, 2, 0.5))
    assert worse.probability >= stormy.probability
    assert stormy.model_version == "support-signals-1"
    with pytest.raises(ValueError, match="negative_share"):
        score_churn(SupportSignalsIn(1, 1.5, 0, 0, None))


@pytest.mark.usefixtures("ai_models")
async def test_churn_from_support_history(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    angry = [
        "This is unacceptable, my package is lost and nobody answers!",
        "Third time I write. Terrible service, I want my money back now.",
    ]
    first = await inbound(tenant, external_id="churny", text=angry[0])
    second_channel = await create_channel(tenant, name="Second")
    await inbound(tenant, external_id="churny", text=angry[1], channel_id=second_channel["id"])
    customer_id = first["customer_id"]
    late = await create_ticket(tenant, requester_id=customer_id)
    await create_ticket(tenant, requester_id=customer_id)
    now = utcnow()
    async with tenant.backend.runtime.sessions() as session:
        # a first response due yesterday, never given; a resolution due 40 days ago is
        # outside the window
        await session.execute(
            update(Ticket)
            .where(Ticket.id == uuid.UUID(late["id"]))
            .values(
                first_response_due_at=now - timedelta(days=1),
                resolution_due_at=now - timedelta(days=40),
                first_responded_at=None,
                solved_at=None,
            )
        )
        await session.commit()

    path = f"/v1/customers/{customer_id}/churn"
    result = expect(await tenant.client.get(path, headers=tenant.viewer.headers), 200)
    signals = result["signals"]
    assert signals["contacts_30d"] == 2  # two conversations, one per channel
    assert signals["negative_share"] == 1.0
    assert signals["sla_breaches_30d"] == 1
    assert signals["open_tickets"] == 2
    assert 0 <= signals["days_since_last_contact"] < 0.1
    assert result["band"] in {"medium", "high"}
    assert result["probability"] > 0.3
    assert result["customer_id"] == customer_id
    contributions = [f["contribution"] for f in result["factors"]]
    assert contributions == sorted(contributions, reverse=True)
    assert len(result["explanation"]) == 3
    assert result["model_version"] == "support-signals-1"
    assert result["notes"] == []

    async with tenant.backend.runtime.sessions() as session:  # one thread goes quiet
        await session.execute(
            update(Message)
            .where(Message.channel_id == uuid.UUID(second_channel["id"]))
            .values(created_at=now - timedelta(days=45))
        )
        await session.commit()
    later = expect(await tenant.client.get(path, headers=tenant.viewer.headers), 200)
    assert later["signals"]["contacts_30d"] == 1
    assert later["probability"] < result["probability"]

    foreign = await tenant.client.get(path, headers=other_tenant.viewer.headers)
    expect_error(foreign, 404, "not_found")
    unknown = await tenant.client.get(
        f"/v1/customers/{uuid.uuid4()}/churn", headers=tenant.viewer.headers
    )
    expect_error(unknown, 404, "not_found")


@pytest.mark.usefixtures("ai_models")
async def test_customer_without_history_is_low_risk(tenant: TenantCtx) -> None:
    quiet = await create_customer(tenant)
    result = expect(
        await tenant.client.get(
            f"/v1/customers/{quiet['id']}/churn", headers=tenant.viewer.headers
        ),
        200,
    )
    assert result["band"] == "low"
    assert result["signals"] == {
        "contacts_30d": 0,
        "negative_share": 0.0,
        "sla_breaches_30d": 0,
        "open_tickets": 0,
        "days_since_last_contact": None,
    }
    assert result["explanation"] == ["No recent support risk signals: baseline risk."]
