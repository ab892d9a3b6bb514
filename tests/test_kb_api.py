"""Knowledge-base articles (CRUD, revisions, soft delete, paging, roles, tenant isolation)
and search, on both backends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core.domain.knowledge import KbArticle
from tests.factories import FakeRetrieval, TenantCtx, count_rows, expect, expect_error, kb_hit

ARTICLES = "/v1/kb/articles"
RETURNS = {
    "title": "  Returns policy ",
    "body": "You can return any item within 30 days for a full refund.",
    "tags": ["returns", "refunds", "returns"],
}

# The first test to use the shared analyzer may build the encoder and train the heads on a
# cold models cache (embedding the VADER texts once: minutes on two shared cores).
pytestmark = pytest.mark.timeout(900)


async def create_article(t: TenantCtx, **fields: Any) -> dict[str, Any]:
    body = {**RETURNS, **fields}
    result: dict[str, Any] = expect(
        await t.client.post(ARTICLES, json=body, headers=t.agent.headers), 201
    )
    return result


@pytest.mark.usefixtures("ai_models")
async def test_article_life_cycle(tenant: TenantCtx) -> None:
    created = await create_article(tenant, language="en")
    assert created["title"] == "Returns policy"
    assert created["tags"] == ["returns", "refunds"]
    assert (created["status"], created["revision"], created["language"]) == ("published", 1, "en")
    path = f"{ARTICLES}/{created['id']}"
    assert expect(await tenant.client.get(path, headers=tenant.viewer.headers), 200) == created

    patch = {"body": "Returns within 60 days.", "status": "draft"}
    edited = expect(await tenant.client.patch(path, json=patch, headers=tenant.agent.headers), 200)
    assert (edited["revision"], edited["status"], edited["body"]) == (2, "draft", patch["body"])
    assert edited["updated_at"] > created["updated_at"]
    same = expect(await tenant.client.patch(path, json=patch, headers=tenant.admin.headers), 200)
    assert same["revision"] == 2  # nothing changed: no new revision
    for null in ({"title": None}, {"tags": None}):
        response = await tenant.client.patch(path, json=null, headers=tenant.agent.headers)
        expect_error(response, 400, "null_not_allowed")
    cleared = await tenant.client.patch(path, json={"language": None}, headers=tenant.agent.headers)
    assert expect(cleared, 200)["language"] is None  # null language: detected when indexed

    deleted = await tenant.client.delete(path, headers=tenant.agent.headers)
    assert deleted.status_code == 204
    expect_error(await tenant.client.get(path, headers=tenant.viewer.headers), 404, "not_found")
    again = await tenant.client.delete(path, headers=tenant.agent.headers)
    expect_error(again, 404, "not_found")
    listed = expect(await tenant.client.get(ARTICLES, headers=tenant.viewer.headers), 200)
    assert created["id"] not in [a["id"] for a in listed["items"]]
    # soft: the row stays (with a new revision) so index replicas see the removal
    async with tenant.backend.runtime.sessions() as session:
        row = await session.get(KbArticle, uuid.UUID(created["id"]))
        assert row is not None
        assert row.deleted_at is not None
        assert row.revision == 4


@pytest.mark.usefixtures("ai_models")
async def test_list_pages_and_filters(tenant: TenantCtx) -> None:
    ids = [(await create_article(tenant, title=f"Article {i}"))["id"] for i in range(5)]
    await create_article(tenant, title="Shipping times", tags=["shipping"], status="draft")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "published"}
        if cursor:
            params["cursor"] = cursor
        page = expect(
            await tenant.client.get(ARTICLES, params=params, headers=tenant.viewer.headers), 200
        )
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    tagged = await tenant.client.get(
        ARTICLES, params={"tag": "shipping"}, headers=tenant.viewer.headers
    )
    assert [a["title"] for a in expect(tagged, 200)["items"]] == ["Shipping times"]


@pytest.mark.usefixtures("ai_models")
async def test_roles_and_tenant_isolation(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    viewer = await tenant.client.post(ARTICLES, json=RETURNS, headers=tenant.viewer.headers)
    expect_error(viewer, 403, "forbidden")
    article = await create_article(tenant)
    path = f"{ARTICLES}/{article['id']}"
    foreign = other_tenant.agent.headers
    expect_error(await tenant.client.get(path, headers=foreign), 404, "not_found")
    patched = await tenant.client.patch(path, json={"title": "mine now"}, headers=foreign)
    expect_error(patched, 404, "not_found")
    expect_error(await tenant.client.delete(path, headers=foreign), 404, "not_found")
    listed = expect(await tenant.client.get(ARTICLES, headers=foreign), 200)
    assert article["id"] not in [a["id"] for a in listed["items"]]
    assert (
        await count_rows(tenant.backend.runtime, KbArticle.id, KbArticle.title == "mine now") == 0
    )


@pytest.mark.usefixtures("ai_models")
@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "body": "x"},
        {"title": "x", "body": "   "},
        {"title": "x", "body": "y", "language": "English"},
        {"title": "x", "body": "y", "status": "archived"},
        {"title": "x", "body": "y", "revision": 7},
        {"title": "x" * 301, "body": "y"},
        {"title": "nul \u0000", "body": "y"},
    ],
    ids=["no-title", "blank-body", "bad-language", "bad-status", "revision", "long-title", "nul"],
)
async def test_bad_articles_are_refused(tenant: TenantCtx, body: dict[str, Any]) -> None:
    response = await tenant.client.post(ARTICLES, json=body, headers=tenant.agent.headers)
    expect_error(response, 422, "validation_error")


@pytest.mark.usefixtures("no_retrieval")
async def test_search_without_retrieval_is_503(tenant: TenantCtx) -> None:
    response = await tenant.client.post(
        "/v1/kb/search", json={"query": "return shoes"}, headers=tenant.viewer.headers
    )
    error = expect_error(response, 503, "model_unavailable")
    assert error["message"] == "knowledge retrieval is not available"
    assert response.headers["retry-after"] == "30"
    # writing articles does not need retrieval
    await create_article(tenant)


async def test_search_and_refresh_go_to_retrieval(
    tenant: TenantCtx, fake_retrieval: FakeRetrieval
) -> None:
    fake_retrieval.articles = [kb_hit(), kb_hit("Refunds")]
    body = {"query": "can I return shoes?", "k": 1, "language": "en"}
    response = await tenant.client.post("/v1/kb/search", json=body, headers=tenant.viewer.headers)
    (hit,) = expect(response, 200)["items"]
    assert hit["citation"]["title"] == "Returns policy"
    assert hit["text"].startswith("You can return")
    tenant_id = uuid.UUID(tenant.id)
    assert fake_retrieval.made("kb_search") == [
        ("kb_search", tenant_id, "can I return shoes?", 1, "en")
    ]
    article = await create_article(tenant)
    path = f"{ARTICLES}/{article['id']}"
    await tenant.client.patch(path, json={"title": "Returns"}, headers=tenant.agent.headers)
    await tenant.client.delete(path, headers=tenant.agent.headers)
    assert fake_retrieval.made("kb_refresh") == [("kb_refresh", tenant_id)] * 3
    for bad in ({"query": " "}, {"query": "x", "k": 0}, {"query": "x", "k": 21}):
        refused = await tenant.client.post("/v1/kb/search", json=bad, headers=tenant.viewer.headers)
        expect_error(refused, 422, "validation_error")


@pytest.mark.usefixtures("ai_models")
async def test_articles_are_searched_for_real_edits_and_deletes_included(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    """The in-process service with real retrieval: what the API writes, search finds."""
    created = await create_article(
        tenant,
        title="Gift wrapping",
        body="Add gift wrapping at checkout for 3 euros; the price is hidden on the packing slip.",
        tags=["gifts"],
    )

    async def search(t: TenantCtx, query: str) -> list[dict[str, Any]]:
        found = await t.client.post(
            "/v1/kb/search", json={"query": query, "k": 3}, headers=t.viewer.headers
        )
        items: list[dict[str, Any]] = expect(found, 200)["items"]
        return items

    hits = await search(tenant, "¿Pueden envolver mi pedido para regalo?")
    assert hits
    assert hits[0]["citation"]["article_id"] == created["id"]
    assert "gift wrapping" in hits[0]["text"].lower()
    assert not [
        h
        for h in await search(other_tenant, "gift wrapping")
        if h["citation"]["article_id"] == created["id"]
    ]

    path = f"{ARTICLES}/{created['id']}"
    edited = {"body": "Gift wrapping is free for members; choose it in the basket."}
    expect(await tenant.client.patch(path, json=edited, headers=tenant.agent.headers), 200)
    hits = await search(tenant, "gift wrapping members")
    assert hits[0]["citation"]["article_id"] == created["id"]
    assert "members" in hits[0]["text"]

    expect(await tenant.client.delete(path, headers=tenant.agent.headers), 204)
    assert all(
        h["citation"]["article_id"] != created["id"] for h in await search(tenant, "gift wrapping")
    )
