"""Users and teams managed by admins: membership from both sides, renames, deletion."""

from __future__ import annotations

from tests.factories import (
    TenantCtx,
    create_team,
    create_ticket,
    expect,
    expect_error,
    get_json,
    inbound,
)


async def test_team_membership_from_both_sides(tenant: TenantCtx) -> None:
    h = tenant.key_headers
    team = await create_team(
        tenant, "Billing", skills=["refunds", "invoices"], member_ids=[tenant.agent.id]
    )
    assert team["skills"] == ["refunds", "invoices"]
    assert [m["id"] for m in team["members"]] == [tenant.agent.id]
    other = await create_team(tenant, "Tech")
    user = expect(
        await tenant.client.patch(
            f"/v1/users/{tenant.viewer.id}", json={"team_ids": [team["id"], other["id"]]}, headers=h
        ),
        200,
    )
    assert {t["name"] for t in user["teams"]} == {"Billing", "Tech"}
    billing = await get_json(tenant, f"/v1/teams/{team['id']}")
    assert {m["id"] for m in billing["members"]} == {tenant.agent.id, tenant.viewer.id}
    renamed = expect(
        await tenant.client.patch(
            f"/v1/teams/{team['id']}", json={"name": "Payments", "member_ids": []}, headers=h
        ),
        200,
    )
    assert renamed["name"] == "Payments"
    assert renamed["members"] == []
    assert renamed["skills"] == ["refunds", "invoices"]  # untouched fields stay
    names = [t["name"] for t in await get_json(tenant, "/v1/teams")]
    assert names == ["Payments", "Tech"]


async def test_team_names_are_unique_per_tenant(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    await create_team(tenant, "Support")
    again = await tenant.client.post(
        "/v1/teams", json={"name": "Support"}, headers=tenant.key_headers
    )
    expect_error(again, 409, "duplicate")
    await create_team(other_tenant, "Support")


async def test_deleting_a_team_unassigns_its_work(tenant: TenantCtx) -> None:
    team = await create_team(tenant)
    conversation = (await inbound(tenant))["conversation_id"]
    expect(
        await tenant.client.post(
            f"/v1/conversations/{conversation}/assign",
            json={"team_id": team["id"]},
            headers=tenant.agent.headers,
        ),
        200,
    )
    ticket = await create_ticket(tenant, team_id=team["id"])
    deleted = await tenant.client.delete(f"/v1/teams/{team['id']}", headers=tenant.key_headers)
    assert deleted.status_code == 204
    expect_error(
        await tenant.client.get(f"/v1/teams/{team['id']}", headers=tenant.key_headers), 404
    )
    assert (await get_json(tenant, f"/v1/conversations/{conversation}"))["team_id"] is None
    assert (await get_json(tenant, f"/v1/tickets/{ticket['id']}"))["team_id"] is None


async def test_users_are_listed_by_name_without_secrets(tenant: TenantCtx) -> None:
    users = await get_json(tenant, "/v1/users")
    assert [u["role"] for u in users] == ["admin", "agent", "viewer"]
    assert all(
        set(u) == {"id", "email", "name", "role", "is_active", "teams", "created_at"} for u in users
    )
    renamed = expect(
        await tenant.client.patch(
            f"/v1/users/{tenant.agent.id}", json={"name": "Zed"}, headers=tenant.key_headers
        ),
        200,
    )
    assert renamed["name"] == "Zed"
    assert [u["name"] for u in await get_json(tenant, "/v1/users")][-1] == "Zed"


async def test_last_admin_cannot_be_demoted_or_deactivated(tenant: TenantCtx) -> None:
    url = f"/v1/users/{tenant.admin.id}"
    for change in ({"role": "agent"}, {"is_active": False}):
        response = await tenant.client.patch(url, json=change, headers=tenant.key_headers)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "last_admin"
    # With a second admin the first may step down.
    promoted = await tenant.client.patch(
        f"/v1/users/{tenant.agent.id}", json={"role": "admin"}, headers=tenant.key_headers
    )
    assert promoted.status_code == 200
    demoted = await tenant.client.patch(url, json={"role": "agent"}, headers=tenant.key_headers)
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "agent"
