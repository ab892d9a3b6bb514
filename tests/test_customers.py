"""Customers: CRUD, lookup by email and phone, and merging duplicates."""

from __future__ import annotations

from tests.factories import (
    TenantCtx,
    create_channel,
    create_customer,
    create_ticket,
    expect,
    expect_error,
    get_json,
    inbound,
)


async def test_create_read_update_delete(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    created = await create_customer(
        tenant,
        name="  Ana  ",
        email="ANA@Example.test",
        phone="+34 600 000 001",
        attributes={"plan": "gold", "seats": 3},
        identities=[{"kind": "external", "value": "crm-1"}],
    )
    assert created["name"] == "Ana"
    assert created["email"] == "ana@example.test"
    assert {(i["kind"], i["value"]) for i in created["identities"]} == {
        ("external", "crm-1"),
        ("email", "ana@example.test"),
        ("phone", "34600000001"),
    }
    cid = created["id"]
    assert await get_json(tenant, f"/v1/customers/{cid}") == created
    patched = expect(
        await tenant.client.patch(
            f"/v1/customers/{cid}",
            json={"name": "Ana B", "attributes": {"seats": 5, "vip": True}},
            headers=h,
        ),
        200,
    )
    assert patched["name"] == "Ana B"
    assert patched["attributes"] == {
        "plan": "gold",
        "seats": 5,
        "vip": True,
    }  # merged, not replaced
    conversation = (await inbound(tenant, external_id="crm-1"))["conversation_id"]
    ticket = (await create_ticket(tenant, conversation_id=conversation))["id"]
    assert (await get_json(tenant, f"/v1/tickets/{ticket}"))["requester_id"] == cid
    assert (await tenant.client.delete(f"/v1/customers/{cid}", headers=h)).status_code == 204
    expect_error(await tenant.client.get(f"/v1/customers/{cid}", headers=h), 404, "not_found")
    # Erasure takes the conversations and messages with it; the ticket stays, unattributed.
    expect_error(await tenant.client.get(f"/v1/conversations/{conversation}", headers=h), 404)
    remaining = await get_json(tenant, f"/v1/tickets/{ticket}")
    assert remaining["requester_id"] is None
    assert remaining["conversation_ids"] == []


async def test_identities_are_unique_per_tenant(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    await create_customer(tenant, email="dup@example.test", phone="+1 555 0100")
    for body in (
        {"email": "DUP@example.test"},
        {"phone": "1-555-0100"},
        {"identities": [{"kind": "email", "value": "dup@example.test"}]},
    ):
        response = await tenant.client.post(
            "/v1/customers", json=body, headers=tenant.agent.headers
        )
        expect_error(response, 409, "duplicate_identity")
    # Another tenant may know the same person.
    await create_customer(other_tenant, email="dup@example.test")


async def test_invalid_customer_fields(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    for body in (
        {"email": "not-an-email"},
        {"phone": "call me"},
        {"identities": [{"kind": "carrier-pigeon", "value": "x"}]},
        {"identities": [{"kind": "email", "value": ""}]},
    ):
        expect_error(
            await tenant.client.post("/v1/customers", json=body, headers=h), 422, "validation_error"
        )


async def test_lookup_by_email_and_phone_across_identities(tenant: TenantCtx) -> None:
    whatsapp = (await create_channel(tenant, "whatsapp", "WA"))["id"]
    wa = (await inbound(tenant, channel_id=whatsapp, external_id="+44 7700 900123"))["customer_id"]
    mail = (
        await create_customer(tenant, identities=[{"kind": "email", "value": "Work@Corp.test"}])
    )["id"]
    assert [
        c["id"] for c in (await get_json(tenant, "/v1/customers", phone="+447700900123"))["items"]
    ] == [wa]
    assert [
        c["id"]
        for c in (await get_json(tenant, "/v1/customers", email=" work@corp.TEST "))["items"]
    ] == [mail]
    assert (await get_json(tenant, "/v1/customers", email="other@corp.test"))["items"] == []


async def test_merge_moves_identities_conversations_and_tickets(tenant: TenantCtx) -> None:
    h = tenant.agent.headers
    web = (await create_channel(tenant, "web", "Web"))["id"]
    target = await create_customer(
        tenant, name="", email="target@example.test", attributes={"tier": "gold"}
    )
    # The duplicate arrives through two channels; one thread shares the target's channel.
    expect(
        await tenant.client.post(
            "/v1/inbound",
            json={
                "channel_id": tenant.channel_id,
                "customer": {"email": "target@example.test"},
                "text": "target's open thread",
                "provider_message_id": "t-1",
            },
            headers=h,
        ),
        201,
    )
    dup_api = await inbound(
        tenant, external_id="dup-ext", customer={"name": "Dup Name"}, text="api thread"
    )
    same_person = {"identity": {"kind": "external", "value": "dup-ext"}}
    dup_web = await inbound(tenant, channel_id=web, customer=same_person, text="web thread")
    assert dup_web["customer_id"] == dup_api["customer_id"]
    source = dup_api["customer_id"]
    ticket = (await create_ticket(tenant, conversation_id=dup_web["conversation_id"]))["id"]
    expect(
        await tenant.client.patch(
            f"/v1/customers/{source}",
            json={"attributes": {"tier": "free", "lang": "es"}},
            headers=h,
        ),
        200,
    )

    merged = expect(
        await tenant.client.post(
            f"/v1/customers/{target['id']}/merge", json={"source_id": source}, headers=h
        ),
        200,
    )
    assert merged["id"] == target["id"]
    assert merged["name"] == "Dup Name"
    assert merged["attributes"] == {"tier": "gold", "lang": "es"}  # the target's values win
    assert {(i["kind"], i["value"]) for i in merged["identities"]} == {
        ("email", "target@example.test"),
        ("external", "dup-ext"),
    }
    assert (await get_json(tenant, f"/v1/tickets/{ticket}"))["requester_id"] == target["id"]
    conversations = (await get_json(tenant, "/v1/conversations", customer_id=target["id"]))["items"]
    by_id = {c["id"]: c for c in conversations}
    assert {dup_api["conversation_id"], dup_web["conversation_id"]} <= set(by_id)
    # Two open threads on one channel would break the one-open-thread rule: the source's closes.
    assert by_id[dup_api["conversation_id"]]["status"] == "resolved"
    assert by_id[dup_web["conversation_id"]]["status"] == "open"
    assert (await get_json(tenant, "/v1/conversations", customer_id=source))["items"] == []
    old = await get_json(tenant, f"/v1/customers/{source}")
    assert old["merged_into_id"] == target["id"]
    assert old["identities"] == []
    listed = {c["id"] for c in (await get_json(tenant, "/v1/customers"))["items"]}
    assert source not in listed
    assert target["id"] in listed
    # New messages from the duplicate's identity now land on the survivor.
    later = await inbound(tenant, channel_id=web, customer=same_person, text="follow-up")
    assert later["customer_id"] == target["id"]
    assert later["conversation_id"] == dup_web["conversation_id"]

    expect_error(
        await tenant.client.post(
            f"/v1/customers/{target['id']}/merge", json={"source_id": source}, headers=h
        ),
        409,
        "already_merged",
    )
    expect_error(
        await tenant.client.post(
            f"/v1/customers/{target['id']}/merge", json={"source_id": target["id"]}, headers=h
        ),
        400,
        "same_customer",
    )


async def test_null_for_a_required_field_is_400_and_harmless(tenant: TenantCtx) -> None:
    customer = await create_customer(tenant, name="Nina", attributes={"a": 1})
    h = tenant.agent.headers
    for body in ({"name": None}, {"attributes": None}):
        response = await tenant.client.patch(
            f"/v1/customers/{customer['id']}", json=body, headers=h
        )
        expect_error(response, 400, "null_not_allowed")
    # Nothing was stored: the customer and the tenant's list still read back.
    assert await get_json(tenant, f"/v1/customers/{customer['id']}") == customer
    assert [c["id"] for c in (await get_json(tenant, "/v1/customers"))["items"]] == [customer["id"]]
    # Optional fields may be cleared.
    cleared = expect(
        await tenant.client.patch(
            f"/v1/customers/{customer['id']}", json={"email": None, "phone": None}, headers=h
        ),
        200,
    )
    assert (cleared["email"], cleared["phone"]) == (None, None)


async def test_changing_email_claims_the_identity_or_conflicts(tenant: TenantCtx) -> None:
    headers = tenant.agent.headers
    first = await tenant.client.post(
        "/v1/customers", json={"name": "A", "email": "a1@shop.example"}, headers=headers
    )
    second = await tenant.client.post(
        "/v1/customers", json={"name": "B", "email": "b1@shop.example"}, headers=headers
    )
    assert first.status_code == second.status_code == 201
    moved = await tenant.client.patch(
        f"/v1/customers/{first.json()['id']}", json={"email": "A2@Shop.example"}, headers=headers
    )
    assert moved.status_code == 200
    kinds = {(i["kind"], i["value"]) for i in moved.json()["identities"]}
    assert ("email", "a2@shop.example") in kinds
    found = await tenant.client.get(
        "/v1/customers", params={"email": "a2@shop.example"}, headers=headers
    )
    assert [c["id"] for c in found.json()["items"]] == [first.json()["id"]]

    clash = await tenant.client.patch(
        f"/v1/customers/{first.json()['id']}", json={"email": "b1@shop.example"}, headers=headers
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "duplicate_identity"
    unchanged = await tenant.client.get(f"/v1/customers/{first.json()['id']}", headers=headers)
    assert unchanged.json()["email"] == "a2@shop.example"
