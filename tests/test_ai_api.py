"""POST /v1/ai/analyze and /v1/ai/suggest on both backends, with the real analyzer; the
runtime's model service: lazy by default, injectable."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core.runtime import Runtime
from models.local import LocalModels
from models.service import (
    Analysis,
    AnalyzeRequest,
    ChurnScore,
    KbHit,
    LabelResult,
    LanguageResultOut,
    ReplyHit,
    SupportSignalsIn,
)
from tests.conftest import client_for
from tests.factories import (
    FakeRetrieval,
    TenantCtx,
    expect,
    expect_error,
    inbound,
    kb_hit,
)

# The first test to use the shared analyzer may build the encoder and train the heads on a
# cold models cache (embedding the VADER texts once: minutes on two shared cores).
pytestmark = [pytest.mark.usefixtures("ai_models"), pytest.mark.timeout(900)]

ANALYZE = "/v1/ai/analyze"


async def analyze(t: TenantCtx, body: dict[str, Any], status: int = 200) -> Any:
    return expect(await t.client.post(ANALYZE, json=body, headers=t.viewer.headers), status)


async def test_analyze_one_message(tenant: TenantCtx) -> None:
    body = {"text": "Me cobraron dos veces 30 euros y nadie me responde.", "channel": "whatsapp"}
    result = await analyze(tenant, body)
    assert set(result) == {
        "language",
        "intent",
        "sentiment",
        "urgency",
        "entities",
        "encoder_version",
        "notes",
        "truncated",
        "model_versions",
    }
    assert result["language"]["code"] == "es"
    assert result["intent"]["label"] == "billing"
    assert result["intent"]["reason"] is None
    assert len(result["intent"]["probabilities"]) == 16
    assert result["sentiment"]["label"] == "negative"
    assert result["urgency"]["label"] in {"normal", "high", "urgent"}
    assert result["entities"][0]["normalized"] == "EUR 30"
    assert result["encoder_version"].startswith("multilingual-e5-small@")
    # before any version is registered the bundle's heads answer, and say so
    versions = {head: result[head]["model_version"] for head in ("intent", "sentiment", "urgency")}
    assert result["model_versions"] == versions
    assert all(v.startswith("bundle/heads-") for v in versions.values())
    assert (result["notes"], result["truncated"]) == ([], False)
    by_key = await tenant.client.post(ANALYZE, json=body, headers=tenant.key_headers)
    assert expect(by_key, 200)["intent"]["label"] == "billing"


async def test_analyze_a_batch_in_six_languages(tenant: TenantCtx) -> None:
    texts = {
        "Where is my package? The tracking has not moved in days": "order_status",
        "Quiero cancelar mi suscripción": "cancel",
        "Esqueci minha senha e não consigo entrar": "account_access",
        "Je voudrais retourner ces chaussures et être remboursé": "return_refund",
        "Die App stürzt beim Öffnen immer ab": "technical_issue",
        "Grazie mille, servizio fantastico!": "praise",
    }
    body = {"items": [{"text": t} for t in texts]}
    result = await analyze(tenant, body)
    assert [r["intent"]["label"] for r in result["items"]] == list(texts.values())
    assert [r["language"]["code"] for r in result["items"]] == ["en", "es", "pt", "fr", "de", "it"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 422, "validation_error"),
        ({"text": "   \n "}, 422, "validation_error"),
        ({"items": []}, 422, "validation_error"),
        ({"items": [{"text": "hi"}] * 65}, 422, "validation_error"),
        ({"items": [{"text": "hi"}, {"text": " "}]}, 422, "validation_error"),
        ({"text": "nul \u0000 byte"}, 422, "validation_error"),
        ({"text": "hi", "channel": "fax"}, 422, "validation_error"),
        ({"text": "hi", "repeat_contacts": -1}, 422, "validation_error"),
        ({"text": "hi", "tenant_id": str(uuid.uuid4())}, 422, "validation_error"),
        ({"txt": "hi"}, 422, "validation_error"),
    ],
    ids=[
        "empty",
        "blank",
        "no-items",
        "too-many-items",
        "blank-item",
        "nul",
        "unknown-channel",
        "negative-repeats",
        "tenant-from-body",
        "typo",
    ],
)
async def test_analyze_refuses_bad_input(
    tenant: TenantCtx, body: dict[str, Any], status: int, code: str
) -> None:
    response = await tenant.client.post(ANALYZE, json=body, headers=tenant.viewer.headers)
    error = expect_error(response, status, code)
    if body.get("text", "x").strip() == "":
        assert "empty" in error["details"][0]["message"]


async def test_analyze_odd_but_valid_input(tenant: TenantCtx) -> None:
    too_big = await tenant.client.post(
        ANALYZE, json={"text": "x" * (1024 * 1024 + 1)}, headers=tenant.viewer.headers
    )
    expect_error(too_big, 413, "payload_too_large")
    long = await analyze(tenant, {"text": "I want a refund for order 5521. " * 800})
    assert long["truncated"] is True
    assert any("characters" in note for note in long["notes"])
    unknown = await analyze(tenant, {"text": "asdf qwer zxcv"})
    assert unknown["language"] == {
        "code": None,
        "confidence": unknown["language"]["confidence"],
        "model_version": unknown["language"]["model_version"],
        "reason": "low_confidence",
    }
    assert unknown["intent"]["label"] is not None or unknown["intent"]["reason"]
    emoji = await analyze(tenant, {"text": "👍"})
    assert emoji["language"]["reason"] == "no_letters"
    unauthenticated = await tenant.client.post(ANALYZE, json={"text": "hi"})
    expect_error(unauthenticated, 401, "unauthorized")


async def test_tenant_intents_change_the_answer(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    gift = {
        "name": "gift_card",
        "description": "Questions about gift cards: balance, redeeming a code, a rejected card",
        "examples": [
            "How do I check the balance on my gift card?",
            "My gift card code is not accepted at checkout",
            "Can I pay with two gift cards on one order?",
            "¿Cómo canjeo mi tarjeta regalo en la web?",
        ],
    }
    created = await tenant.client.post("/v1/intents", json=gift, headers=tenant.admin.headers)
    expect(created, 201)
    question = {"text": "what's the remaining balance of my gift voucher?"}
    mine = await analyze(tenant, question)
    assert mine["intent"]["label"] == "gift_card"
    theirs = await analyze(other_tenant, question)
    assert theirs["intent"]["label"] != "gift_card"
    assert "gift_card" not in theirs["intent"]["probabilities"]

    order = {"text": "When will my order arrive?"}
    assert (await analyze(tenant, order))["intent"]["label"] == "order_status"
    switch = "/v1/intents/order_status"
    off = await tenant.client.patch(switch, json={"enabled": False}, headers=tenant.admin.headers)
    assert expect(off, 200)["enabled"] is False
    for text in (order["text"], "Where is my package? The tracking has not moved in days"):
        answer = await analyze(tenant, {"text": text})
        assert answer["intent"]["label"] != "order_status"
        assert "order_status" not in answer["intent"]["probabilities"]
    on = await tenant.client.patch(switch, json={"enabled": True}, headers=tenant.admin.headers)
    expect(on, 200)
    assert (await analyze(tenant, order))["intent"]["label"] == "order_status"


@pytest.mark.usefixtures("no_retrieval")
async def test_suggest_needs_retrieval_and_an_own_conversation(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    sent = await inbound(tenant, text="How do I return a pair of shoes?")
    body = {"conversation_id": sent["conversation_id"]}
    response = await tenant.client.post("/v1/ai/suggest", json=body, headers=tenant.viewer.headers)
    error = expect_error(response, 503, "model_unavailable")
    assert error["message"] == "knowledge retrieval is not available"
    for t, conversation in ((other_tenant, sent["conversation_id"]), (tenant, str(uuid.uuid4()))):
        missing = await t.client.post(
            "/v1/ai/suggest", json={"conversation_id": conversation}, headers=t.viewer.headers
        )
        expect_error(missing, 404, "not_found")


async def test_suggest_answers_the_latest_customer_messages(
    tenant: TenantCtx, fake_retrieval: FakeRetrieval
) -> None:
    first = await inbound(tenant, external_id="suggest-1", text="Hi there")
    await inbound(tenant, external_id="suggest-1", text="How do I return a pair of shoes?")
    conversation = uuid.UUID(first["conversation_id"])
    fake_retrieval.articles = [kb_hit(), kb_hit("Refunds")]
    fake_retrieval.replies = [
        ReplyHit(conversation, "same thread", "must not come back", 0.99),
        ReplyHit(uuid.uuid4(), "Can I return boots?", "Yes, within 30 days.", 0.8),
    ]
    body = {"conversation_id": str(conversation), "articles": 1, "replies": 1}
    response = await tenant.client.post("/v1/ai/suggest", json=body, headers=tenant.viewer.headers)
    result = expect(response, 200)
    assert result["query"] == "Hi there\nHow do I return a pair of shoes?"
    assert [a["citation"]["title"] for a in result["articles"]] == ["Returns policy"]
    assert set(result["articles"][0]["citation"]) == {"article_id", "chunk", "title"}
    assert [r["reply_text"] for r in result["replies"]] == ["Yes, within 30 days."]
    (search,) = fake_retrieval.made("kb_search")
    assert search[1] == uuid.UUID(tenant.id)
    assert search[3] == 1


async def test_models_are_lazy_and_injectable(tenant: TenantCtx) -> None:
    settings = tenant.backend.settings
    lazy = Runtime.build(settings)
    async with client_for(lazy) as client:
        response = await client.get("/v1/channels", headers=tenant.viewer.headers)
        expect(response, 200)
    assert lazy.model_service is None  # nothing asked the models: nothing was built
    models = lazy.models
    assert isinstance(models, LocalModels)
    assert models.loaded is None  # built, but its analyzer loads on the first call
    assert (await models.versions()) == {"churn": "support-signals-1"}
    await lazy.close()

    canned = CannedModels()
    injected = Runtime.build(settings, models=canned)
    async with client_for(injected) as client:
        response = await client.post(ANALYZE, json={"text": "hi"}, headers=tenant.viewer.headers)
        assert expect(response, 200)["intent"]["model_version"] == "canned"
    assert canned.seen[0].taxonomy.disabled == ()
    await injected.close()
    assert canned.closed


class CannedModels:
    """A ModelService double standing in for a handle-backed one: canned analyses."""

    def __init__(self) -> None:
        self.seen: list[AnalyzeRequest] = []
        self.closed = False

    async def analyze(self, requests: list[AnalyzeRequest]) -> list[Analysis]:
        self.seen += requests
        label = LabelResult("other", 1.0, {"other": 1.0}, "canned")
        language = LanguageResultOut("en", 1.0, "canned")
        return [Analysis(language, label, label, label, (), "canned") for _ in requests]

    async def kb_search(
        self, tenant_id: uuid.UUID, query: str, k: int = 5, language: str | None = None
    ) -> list[KbHit]:
        raise AssertionError("not used")

    async def kb_refresh(self, tenant_id: uuid.UUID) -> None:
        raise AssertionError("not used")

    async def similar_replies(self, tenant_id: uuid.UUID, text: str, k: int = 3) -> list[ReplyHit]:
        raise AssertionError("not used")

    async def churn(self, signals: SupportSignalsIn) -> ChurnScore:
        raise AssertionError("not used")

    async def versions(self) -> dict[str, str]:
        return {"canned": "1"}

    async def close(self) -> None:
        self.closed = True
