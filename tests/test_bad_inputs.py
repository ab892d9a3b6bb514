"""Bad requests get the right 4xx, always in the JSON error envelope, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.factories import (
    Backend,
    TenantCtx,
    create_ticket,
    expect_error,
    inbound,
    make_tenant,
)


@dataclass
class Case:
    method: str
    path: str
    status: int
    code: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] | None = None
    auth: str = "agent"  # agent, admin, none, bad-token, bad-key


@dataclass
class Ids:
    t: TenantCtx
    ticket: str
    conversation: str


@pytest_asyncio.fixture(loop_scope="session")
async def ids(backend: Backend) -> Ids:
    t = await make_tenant(backend)
    return Ids(t, (await create_ticket(t))["id"], str((await inbound(t))["conversation_id"]))


def _inbound(**changes: Any) -> dict[str, Any]:
    return {"customer": {"external_id": "x"}, "text": "hi", "provider_message_id": "p", **changes}


def _policy_case(business_hours: dict[str, Any]) -> Case:
    """A policy whose calendar is valid except for `business_hours`' own keys."""
    hours = {"timezone": "Europe/Madrid", "hours": {"mon": [["09:00", "17:00"]]}, **business_hours}
    body = {"name": "S", "targets": {}, "business_hours": hours}
    return Case("POST", "/v1/sla-policies", 422, "validation_error", json=body, auth="admin")


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(9):
        yield b" " * (128 * 1024)


CASES = {
    "malformed-json": Case(
        "POST", "/v1/tickets", 400, "malformed_json", content=b'{"subject": "x",'
    ),
    "truncated-json": Case("POST", "/v1/inbound", 400, "malformed_json", content=b"{"),
    "json-array-body": Case("POST", "/v1/tickets", 422, "validation_error", json=["subject"]),
    "missing-body": Case("POST", "/v1/tickets", 422, "validation_error"),
    "wrong-type-subject": Case(
        "POST", "/v1/tickets", 422, "validation_error", json={"subject": 123}
    ),
    "wrong-type-tags": Case(
        "POST", "/v1/tickets", 422, "validation_error", json={"subject": "x", "tags": "vip"}
    ),
    "wrong-type-version": Case(
        "PATCH", "/v1/tickets/{ticket}", 422, "validation_error", json={"version": "two"}
    ),
    "version-zero": Case(
        "PATCH", "/v1/tickets/{ticket}", 422, "validation_error", json={"version": 0}
    ),
    "wrong-type-attributes": Case(
        "POST", "/v1/customers", 422, "validation_error", json={"attributes": []}
    ),
    "wrong-type-uuid-in-body": Case(
        "POST", "/v1/tickets", 422, "validation_error", json={"subject": "x", "assignee_id": "bob"}
    ),
    "unknown-ticket-status": Case(
        "POST", "/v1/tickets", 422, "validation_error", json={"subject": "x", "status": "exploded"}
    ),
    "unknown-ticket-status-patch": Case(
        "PATCH", "/v1/tickets/{ticket}", 422, "validation_error", json={"status": "reopened"}
    ),
    "unknown-priority": Case(
        "POST", "/v1/tickets", 422, "validation_error", json={"subject": "x", "priority": "mega"}
    ),
    "unknown-conversation-status": Case(
        "PATCH",
        "/v1/conversations/{conversation}",
        422,
        "validation_error",
        json={"status": "archived"},
    ),
    "unknown-role-user": Case(
        "POST",
        "/v1/users",
        422,
        "validation_error",
        json={"email": "r@example.test", "name": "R", "password": "long-enough", "role": "god"},
        auth="admin",
    ),
    "unknown-role-api-key": Case(
        "POST",
        "/v1/api-keys",
        422,
        "validation_error",
        json={"name": "k", "role": "root"},
        auth="admin",
    ),
    "unknown-channel-type": Case(
        "POST",
        "/v1/channels",
        422,
        "validation_error",
        json={"type": "fax", "name": "F"},
        auth="admin",
    ),
    "unknown-status-filter": Case(
        "GET", "/v1/tickets", 422, "validation_error", params={"status": "bogus"}
    ),
    "unknown-priority-filter": Case(
        "GET", "/v1/conversations", 422, "validation_error", params={"priority": "bogus"}
    ),
    "unknown-field": Case(
        "POST", "/v1/tickets", 422, "validation_error", json={"subject": "x", "colour": "red"}
    ),
    "unknown-field-patch": Case(
        "PATCH",
        "/v1/conversations/{conversation}",
        422,
        "validation_error",
        json={"statuz": "open"},
    ),
    "unknown-nested-field": Case(
        "POST",
        "/v1/inbound",
        422,
        "validation_error",
        json=_inbound(customer={"external_id": "x", "age": 3}),
    ),
    "inbound-without-identity": Case(
        "POST", "/v1/inbound", 422, "validation_error", json=_inbound(customer={"name": "Nobody"})
    ),
    "snooze-without-until": Case(
        "PATCH",
        "/v1/conversations/{conversation}",
        422,
        "validation_error",
        json={"status": "snoozed"},
    ),
    "oversized-declared": Case(
        "POST", "/v1/tickets", 413, "payload_too_large", content=b"x" * (1024 * 1024 + 1)
    ),
    "bad-uuid-ticket": Case("GET", "/v1/tickets/not-a-uuid", 422, "validation_error"),
    "bad-uuid-conversation": Case(
        "POST", "/v1/conversations/123/notes", 422, "validation_error", json={"body": "x"}
    ),
    "bad-uuid-customer": Case("GET", "/v1/customers/zzz", 422, "validation_error"),
    "bad-cursor-tickets": Case(
        "GET", "/v1/tickets", 400, "invalid_cursor", params={"cursor": "!!!"}
    ),
    "bad-cursor-conversations": Case(
        "GET", "/v1/conversations", 400, "invalid_cursor", params={"cursor": "abc"}
    ),
    "bad-cursor-customers": Case(
        "GET", "/v1/customers", 400, "invalid_cursor", params={"cursor": "a" * 40}
    ),
    "limit-zero": Case("GET", "/v1/tickets", 422, "validation_error", params={"limit": 0}),
    "limit-too-big": Case("GET", "/v1/tickets", 422, "validation_error", params={"limit": 501}),
    "naive-updated-since": Case(
        "GET",
        "/v1/tickets",
        422,
        "validation_error",
        params={"updated_since": "2026-01-01T00:00:00"},
    ),
    "query-too-long": Case("GET", "/v1/tickets", 422, "validation_error", params={"q": "a" * 501}),
    "missing-auth": Case("GET", "/v1/tickets", 401, "unauthorized", auth="none"),
    "missing-auth-write": Case(
        "POST", "/v1/tickets", 401, "unauthorized", json={"subject": "x"}, auth="none"
    ),
    "bad-token": Case("GET", "/v1/conversations", 401, "unauthorized", auth="bad-token"),
    "bad-api-key": Case("GET", "/v1/customers", 401, "unauthorized", auth="bad-key"),
    "unknown-route": Case("GET", "/v1/nothing-here", 404, "not_found"),
    "method-not-allowed": Case("PUT", "/v1/tickets", 405, "method_not_allowed"),
    "bad-timezone": _policy_case({"timezone": "Mars/Olympus"}),
    "span-ends-before-start": _policy_case({"hours": {"mon": [["18:00", "09:00"]]}}),
    "bad-clock": _policy_case({"hours": {"mon": [["9am", "17:00"]]}}),
    "bad-weekday": _policy_case({"hours": {"monday": [["09:00", "17:00"]]}}),
    "bad-holiday": _policy_case({"holidays": ["25/12/2026"]}),
    "calendar-never-open": _policy_case({"hours": {}}),
    "calendar-with-empty-days": _policy_case({"hours": {"mon": [], "tue": []}}),
    "unknown-target-priority": Case(
        "POST",
        "/v1/sla-policies",
        422,
        "validation_error",
        auth="admin",
        json={
            "name": "S",
            "targets": {"asap": {"first_response_minutes": 1, "resolution_minutes": 2}},
        },
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_bad_input(ids: Ids, case: Case) -> None:
    t = ids.t
    headers = {
        "agent": t.agent.headers,
        "admin": t.admin.headers,
        "none": {},
        "bad-token": {"Authorization": "Bearer abc.def.ghi"},
        "bad-key": {"X-API-Key": "rdk_nope_nope"},
    }[case.auth]
    path = case.path.format(ticket=ids.ticket, conversation=ids.conversation)
    body = case.json
    if isinstance(body, dict) and "provider_message_id" in body:
        body = {**body, "channel_id": t.channel_id}
    kwargs: dict[str, Any] = {"headers": dict(headers), "params": case.params}
    if case.content is not None:
        kwargs["content"] = case.content
        kwargs["headers"]["content-type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    response = await t.client.request(case.method, path, **kwargs)
    expect_error(response, case.status, case.code)


async def test_oversized_body_without_content_length(ids: Ids) -> None:
    response = await ids.t.client.post(
        "/v1/tickets",
        content=_chunks(),
        headers={**ids.t.agent.headers, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    expect_error(response, 413, "payload_too_large")


async def test_validation_details_point_at_the_field(ids: Ids) -> None:
    response = await ids.t.client.post(
        "/v1/tickets", json={"subject": "x", "priority": "mega"}, headers=ids.t.agent.headers
    )
    error = expect_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "priority"]
    assert error["details"][0]["type"] == "enum"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/tickets", {"subject": "nul \u0000 byte"}),
        ("/v1/customers", {"name": "x", "attributes": {"k\u0000": 1}}),
        ("/v1/inbound", _inbound(text="nul\u0000", provider_message_id="nul")),
    ],
    ids=["ticket-subject", "customer-attribute-key", "inbound-text"],
)
async def test_nul_characters_are_refused_not_500(
    ids: Ids, path: str, body: dict[str, Any]
) -> None:
    if "provider_message_id" in body:
        body = {**body, "channel_id": ids.t.channel_id}
    response = await ids.t.client.post(path, json=body, headers=ids.t.agent.headers)
    expect_error(response, 422, "validation_error")


async def test_nul_in_a_query_is_refused_not_500(ids: Ids) -> None:
    response = await ids.t.client.get(
        "/v1/tickets", params={"q": "a\u0000b"}, headers=ids.t.agent.headers
    )
    assert 400 <= response.status_code < 500
    expect_error(response, response.status_code)


async def test_error_envelope_is_json_with_content_type(tenant: TenantCtx) -> None:
    response = await tenant.client.post(
        "/v1/tickets",
        content=b"{oops",
        headers={**tenant.agent.headers, "content-type": "application/json"},
    )
    assert response.headers["content-type"].startswith("application/json")
    assert json.loads(response.content)["error"]["code"] == "malformed_json"
