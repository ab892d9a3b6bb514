"""The fast list path (api/fast_lists.py) answers exactly as the routes do, and leaves
everything it does not parse strictly to them."""

from __future__ import annotations

from typing import Any

import pytest

from api.fast_lists import FastLists
from tests.factories import (
    TenantCtx,
    create_channel,
    create_team,
    create_ticket,
    expect,
    get_json,
    inbound,
)


async def _seed(t: TenantCtx) -> dict[str, str]:
    web = (await create_channel(t, "web", "Web"))["id"]
    team = (await create_team(t))["id"]
    first = str((await inbound(t, external_id="f1", text="refund please"))["conversation_id"])
    await inbound(t, external_id="f2", text="where is my order")
    await inbound(t, external_id="f3", channel_id=web, text="hello")
    expect(
        await t.client.patch(
            f"/v1/conversations/{first}",
            json={"tags": ["vip"], "priority": "high", "status": "pending"},
            headers=t.agent.headers,
        ),
        200,
    )
    await create_ticket(t, conversation_id=first, tags=["vip"], assignee_id=t.agent.id)
    await create_ticket(t, subject="refund for a lamp", status="pending", team_id=team)
    await create_ticket(t, subject="invoice copy", priority="urgent")
    return {"web": web, "team": team, "agent": t.agent.id}


def _cases(ids: dict[str, str], cursors: dict[str, str]) -> list[str]:
    return [
        "/v1/conversations",
        "/v1/conversations?status=open",
        "/v1/conversations?status=open&status=pending",
        "/v1/conversations?tag=vip",
        "/v1/conversations?priority=high",
        f"/v1/conversations?channel_id={ids['web']}",
        "/v1/conversations?limit=2",
        f"/v1/conversations?limit=2&cursor={cursors['conversations']}",
        "/v1/conversations?q=refund",
        "/v1/tickets",
        "/v1/tickets?q=refund",
        "/v1/tickets?status=new&status=pending",
        "/v1/tickets?tag=vip",
        f"/v1/tickets?assignee_id={ids['agent']}",
        f"/v1/tickets?team_id={ids['team']}",
        "/v1/tickets?limit=1",
        f"/v1/tickets?limit=1&cursor={cursors['tickets']}",
        "/v1/tickets?priority=urgent",
    ]


# Left to the routes: each is answered as the route answers it (errors included).
FALLBACKS = [
    "/v1/conversations?limit=0",
    "/v1/conversations?limit=abc",
    "/v1/conversations?limit=501",
    "/v1/conversations?status=bogus",
    "/v1/conversations?cursor=not-a-cursor",
    "/v1/conversations?updated_since=2020-01-01T00:00:00Z",
    "/v1/conversations?assignee_id=not-a-uuid",
    "/v1/conversations?tag=",
    "/v1/conversations?priority=high&priority=low",
    "/v1/conversations?unknown=1",
    "/v1/tickets?status=solved&q=" + "x" * 501,
]


async def _both(
    t: TenantCtx, path: str, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    api = t.backend.runtime.settings.api
    monkeypatch.setattr(api, "fast_lists", False)
    routed = await t.client.get(path, headers=headers)
    monkeypatch.setattr(api, "fast_lists", True)
    fast = await t.client.get(path, headers=headers)
    return routed, fast


async def test_fast_answers_equal_the_routes_byte_for_byte(
    tenant: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _seed(tenant)
    answered: list[str] = []
    original = FastLists._answer

    async def counted(self: FastLists, endpoint: Any, scope: Any) -> Any:
        result = await original(self, endpoint, scope)
        answered.append(scope["path"] + "?" + scope["query_string"].decode())
        return result

    monkeypatch.setattr(FastLists, "_answer", counted)
    cursors = {
        kind: (await get_json(tenant, f"/v1/{kind}", limit=1 if kind == "tickets" else 2))[
            "next_cursor"
        ]
        for kind in ("conversations", "tickets")
    }
    assert all(cursors.values())
    answered.clear()
    cases = _cases(ids, cursors)
    for headers in (tenant.agent.headers, tenant.key_headers, tenant.viewer.headers):
        for path in cases:
            routed, fast = await _both(tenant, path, headers, monkeypatch)
            assert routed.status_code == 200, (path, routed.text)
            assert (fast.status_code, fast.content) == (200, routed.content), path
            assert fast.headers["content-type"] == routed.headers["content-type"]
            assert fast.headers["x-request-id"]
    # On PostgreSQL every well-formed case was answered by the fast path (the routes had
    # resolved the callers first), for each kind of credential; SQLite keeps the routes.
    fast_here = tenant.backend.name == "postgres"
    assert len(answered) == (3 * len(cases) if fast_here else 0)
    answered.clear()
    for path in FALLBACKS:
        routed, fast = await _both(tenant, path, tenant.agent.headers, monkeypatch)
        assert (fast.status_code, fast.content) == (routed.status_code, routed.content), path
    assert answered == []


async def test_an_unresolved_or_missing_credential_goes_to_the_routes(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    await _seed(tenant)
    denied = await tenant.client.get("/v1/conversations")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "unauthorized"
    bad = await tenant.client.get("/v1/tickets", headers={"X-API-Key": "rdk_nope_nope"})
    assert bad.status_code == 401
    # Another tenant's caller sees only its own rows on the fast path too.
    await get_json(other_tenant, "/v1/tickets")
    theirs = expect(
        await other_tenant.client.get("/v1/tickets", headers=other_tenant.key_headers), 200
    )
    assert theirs["items"] == []
