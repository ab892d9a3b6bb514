"""`Retrieval` on the database (SQLite and PostgreSQL): articles and resolved conversations
are followed by `updated_at`, per tenant, without restarts. The hashing encoder stands in
for e5: these tests are about freshness, isolation and citations, not ranking quality."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Literal

import numpy as np
import pytest
import pytest_asyncio
from sqlalchemy import update

from core.db.types import utcnow
from core.domain.channels import Channel
from core.domain.conversations import Conversation, Message
from core.domain.customers import Customer
from core.domain.enums import ConversationStatus, Direction, SenderType
from core.domain.knowledge import KbArticle
from core.domain.tenancy import Tenant
from core.settings import AiSettings
from models.encoder import HashingEncoder
from models.retrieval import Retrieval, RetrievalUnavailableError
from tests.factories import Backend

ENCODER = HashingEncoder()
RETURNS = "Returns are free within thirty days; print the prepaid label from your orders page."
PARCELS = "Parcels leave the Rotterdam warehouse daily; tracking numbers arrive by email."


class CountingEmbed:
    """The hashing encoder behind the async `embed` port, counting passages embedded."""

    def __init__(self) -> None:
        self.passages: list[str] = []
        self.fail = False

    async def __call__(self, texts: list[str], kind: Literal["query", "passage"]) -> np.ndarray:
        if self.fail:
            raise ConnectionError("encoder unreachable")
        if kind == "passage":
            self.passages.extend(texts)
        return ENCODER.encode(texts, kind)


def retrieval(
    backend: Backend,
    embed: CountingEmbed,
    *,
    poll_seconds: float = 60.0,  # only kb_refresh catches up, unless a test says otherwise
    overlap_seconds: float = 30.0,
    reconcile_seconds: float = 300.0,
) -> Retrieval:
    return Retrieval(
        backend.runtime.sessions,
        embed,
        AiSettings(),
        poll_seconds=poll_seconds,
        overlap_seconds=overlap_seconds,
        reconcile_seconds=reconcile_seconds,
    )


async def new_tenant(backend: Backend) -> uuid.UUID:
    suffix = uuid.uuid4().hex[:12]
    async with backend.runtime.sessions() as session:
        tenant = Tenant(name=f"Retrieval {suffix}", slug=f"r-{suffix}")
        session.add(tenant)
        await session.commit()
        return tenant.id


async def add_article(
    backend: Backend, tenant_id: uuid.UUID, title: str, body: str, **fields: object
) -> uuid.UUID:
    async with backend.runtime.sessions() as session:
        article = KbArticle(tenant_id=tenant_id, title=title, body=body, language="en", **fields)
        session.add(article)
        await session.commit()
        return article.id


async def change_article(backend: Backend, article_id: uuid.UUID, **values: object) -> None:
    async with backend.runtime.sessions() as session:
        await session.execute(
            update(KbArticle)
            .where(KbArticle.id == article_id)
            .values(revision=KbArticle.revision + 1, **values)
        )
        await session.commit()


async def found(service: Retrieval, tenant_id: uuid.UUID, query: str) -> list[uuid.UUID]:
    return [h.citation.article_id for h in await service.kb_search(tenant_id, query, k=3)]


@pytest_asyncio.fixture(loop_scope="session")
async def embed() -> CountingEmbed:
    return CountingEmbed()


@pytest_asyncio.fixture(loop_scope="session")
async def service(backend: Backend, embed: CountingEmbed) -> AsyncIterator[Retrieval]:
    svc = retrieval(backend, embed)
    yield svc
    await svc.close()


async def test_a_new_article_is_found_within_the_poll_window_without_refresh(
    backend: Backend, embed: CountingEmbed
) -> None:
    tenant = await new_tenant(backend)
    svc = retrieval(backend, embed, poll_seconds=0.3)
    try:
        assert await svc.kb_search(tenant, "free returns label") == []
        article = await add_article(backend, tenant, "Returns", RETURNS)
        await asyncio.sleep(0.35)
        hits = await svc.kb_search(tenant, "free returns prepaid label", k=3)
        assert [h.citation.article_id for h in hits] == [article]
        assert hits[0].citation.title == "Returns"
        assert hits[0].citation.chunk == 0
        assert hits[0].text == RETURNS
        assert hits[0].language == "en"
    finally:
        await svc.close()


async def test_writes_wait_for_the_poll_window_or_a_refresh(
    backend: Backend, service: Retrieval
) -> None:
    tenant = await new_tenant(backend)
    first = await add_article(backend, tenant, "Returns", RETURNS)
    assert await found(service, tenant, "returns label") == [first]
    second = await add_article(backend, tenant, "Parcels", PARCELS)
    assert second not in await found(service, tenant, "parcels tracking numbers")  # polled 60 s
    await service.kb_refresh(tenant)
    assert (await found(service, tenant, "parcels tracking numbers"))[0] == second


async def test_an_edit_reembeds_that_article_only_and_the_old_text_is_gone(
    backend: Backend, service: Retrieval, embed: CountingEmbed
) -> None:
    tenant = await new_tenant(backend)
    returns = await add_article(backend, tenant, "Returns", RETURNS)
    parcels = await add_article(backend, tenant, "Parcels", PARCELS)
    await service.kb_refresh(tenant)
    embed.passages.clear()
    new_body = "Exchanges ship the new size as soon as the courier scans your parcel."
    await change_article(backend, returns, title="Exchanges", body=new_body)
    await service.kb_refresh(tenant)
    assert embed.passages == ["Exchanges\n" + new_body]  # the parcels article was not touched
    hits = await service.kb_search(tenant, "exchange new size courier scans", k=3)
    assert hits[0].citation.article_id == returns
    assert hits[0].citation.title == "Exchanges"
    assert all(RETURNS not in h.text for h in hits)
    assert await found(service, tenant, "prepaid label thirty days") != [returns]
    # a change that leaves the text as it was (tags) embeds nothing
    embed.passages.clear()
    await change_article(backend, parcels, tags=["shipping"])
    await service.kb_refresh(tenant)
    assert embed.passages == []
    assert parcels in await found(service, tenant, "Rotterdam warehouse tracking")


async def test_drafts_and_soft_deleted_articles_leave_the_index(
    backend: Backend, service: Retrieval
) -> None:
    tenant = await new_tenant(backend)
    returns = await add_article(backend, tenant, "Returns", RETURNS)
    parcels = await add_article(backend, tenant, "Parcels", PARCELS)
    hidden = await add_article(
        backend, tenant, "Draft", "Secret draft about returns", status="draft"
    )
    assert hidden not in await found(service, tenant, "secret draft returns")
    await change_article(backend, returns, status="draft")
    await change_article(backend, parcels, deleted_at=utcnow())
    await service.kb_refresh(tenant)
    assert await found(service, tenant, "returns prepaid label") == []
    assert await found(service, tenant, "parcels Rotterdam tracking") == []
    await change_article(backend, returns, status="published")
    await service.kb_refresh(tenant)
    assert await found(service, tenant, "returns prepaid label") == [returns]


async def test_a_tenant_never_sees_another_tenants_articles(
    backend: Backend, service: Retrieval
) -> None:
    mine, theirs = await new_tenant(backend), await new_tenant(backend)
    article = await add_article(backend, theirs, "Returns", RETURNS)
    await add_article(backend, mine, "Parcels", PARCELS)
    assert article in await found(service, theirs, "returns label")
    hits = await service.kb_search(mine, "returns prepaid label thirty days", k=10)
    assert hits
    assert all(h.citation.article_id != article for h in hits)


async def test_late_commits_inside_the_overlap_and_old_stamps_at_reconcile_are_caught(
    backend: Backend, embed: CountingEmbed
) -> None:
    tenant = await new_tenant(backend)
    await add_article(backend, tenant, "Parcels", PARCELS)
    svc = retrieval(backend, embed, overlap_seconds=30.0, reconcile_seconds=3600.0)
    try:
        await svc.kb_refresh(tenant)
        # a transaction stamped before the watermark commits only now
        late = await add_article(
            backend, tenant, "Returns", RETURNS, updated_at=utcnow() - timedelta(seconds=5)
        )
        await svc.kb_refresh(tenant)
        assert (await found(svc, tenant, "returns prepaid label"))[0] == late
        # beyond the overlap (a writer's clock far behind): only a full pass sees it
        lost = await add_article(
            backend,
            tenant,
            "Gift cards",
            "Gift cards are valid for three years.",
            updated_at=utcnow() - timedelta(hours=2),
        )
        await svc.kb_refresh(tenant)
        assert lost not in await found(svc, tenant, "gift cards valid years")
    finally:
        await svc.close()
    restarted = retrieval(backend, embed, reconcile_seconds=0.0)
    try:  # a new replica (or a reconcile pass) rebuilds everything from the database
        assert (await found(restarted, tenant, "gift cards valid years"))[0] == lost
        assert (await found(restarted, tenant, "returns prepaid label"))[0] == late
    finally:
        await restarted.close()


async def test_an_encoder_outage_on_the_first_pass_is_an_error_then_recovers(
    backend: Backend,
) -> None:
    tenant = await new_tenant(backend)
    article = await add_article(backend, tenant, "Returns", RETURNS)
    broken = CountingEmbed()
    svc = retrieval(backend, broken)
    try:
        await svc.warm_up()  # centroids first, so that only the article pass fails
        broken.fail = True
        with pytest.raises(RetrievalUnavailableError):
            await svc.kb_refresh(tenant)
        broken.fail = False
        await svc.kb_refresh(tenant)
        assert await found(svc, tenant, "returns label") == [article]
    finally:
        await svc.close()


# --------------------------------------------------------------------------- replies
async def add_conversation(
    backend: Backend,
    tenant_id: uuid.UUID,
    turns: list[tuple[Direction, SenderType, str]],
    status: ConversationStatus = ConversationStatus.RESOLVED,
) -> uuid.UUID:
    async with backend.runtime.sessions() as session:
        channel = Channel(tenant_id=tenant_id, type="api", name="Integration", config={})
        customer = Customer(tenant_id=tenant_id, name="Ana")
        session.add_all([channel, customer])
        await session.flush()
        conversation = Conversation(
            tenant_id=tenant_id,
            customer_id=customer.id,
            channel_id=channel.id,
            status=status,
            message_count=len(turns),
        )
        session.add(conversation)
        await session.flush()
        for direction, sender, text in turns:
            session.add(
                Message(
                    tenant_id=tenant_id,
                    conversation_id=conversation.id,
                    channel_id=channel.id,
                    direction=direction,
                    sender_type=sender,
                    text=text,
                )
            )
            await session.flush()  # one created_at each, in order
        await session.commit()
        return conversation.id


def case(question: str, answer: str) -> list[tuple[Direction, SenderType, str]]:
    return [
        (Direction.INBOUND, SenderType.CUSTOMER, question),
        (Direction.OUTBOUND, SenderType.AGENT, answer),
    ]


async def set_status(backend: Backend, conversation_id: uuid.UUID, status: str) -> None:
    async with backend.runtime.sessions() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(status=status)
        )
        await session.commit()


async def test_reply_suggestions_come_from_resolved_conversations_of_the_tenant(
    backend: Backend, embed: CountingEmbed
) -> None:
    tenant, other = await new_tenant(backend), await new_tenant(backend)
    late = await add_conversation(
        backend,
        tenant,
        case("my parcel is late, tracking has not moved", "Sorry! I opened a carrier claim."),
    )
    refund = await add_conversation(
        backend, tenant, case("where is my refund for the returned boots", "It was issued today.")
    )
    await add_conversation(  # still open: not a resolved case
        backend,
        tenant,
        case("my parcel is late and tracking is stuck", "Looking into it"),
        ConversationStatus.OPEN,
    )
    theirs = await add_conversation(
        backend, other, case("my parcel is late, tracking has not moved", "Their answer")
    )
    svc = retrieval(backend, embed, poll_seconds=0.2)
    try:
        hits = await svc.similar_replies(tenant, "parcel late, tracking not moving", k=3)
        assert [h.conversation_id for h in hits] == [late, refund]
        assert hits[0].customer_text == "my parcel is late, tracking has not moved"
        assert hits[0].reply_text == "Sorry! I opened a carrier claim."
        assert hits[0].score > hits[1].score
        assert theirs not in [h.conversation_id for h in hits]
        # reopened: it leaves the index within the poll window
        await set_status(backend, late, ConversationStatus.OPEN)
        await asyncio.sleep(0.25)
        hits = await svc.similar_replies(tenant, "parcel late, tracking not moving", k=3)
        assert [h.conversation_id for h in hits] == [refund]
        await set_status(backend, late, ConversationStatus.RESOLVED)
        await asyncio.sleep(0.25)
        hits = await svc.similar_replies(tenant, "parcel late, tracking not moving", k=1)
        assert [h.conversation_id for h in hits] == [late]
        assert await svc.similar_replies(tenant, "   ") == []
    finally:
        await svc.close()
