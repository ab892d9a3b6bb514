"""POST /v1/attachments and GET /v1/attachments/{key}: limits with the error envelope,
roles, tenant isolation, downloads of message attachments, and the S3 store behind it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text

from api.app import create_app
from core.db.migrate import alembic_config, upgrade, upgrade_async
from core.db.models import Base
from core.runtime import Runtime
from core.settings import Settings, StorageSettings
from core.storage import StorageUnavailable
from core.storage.s3 import S3AttachmentStore
from tests.channel_helpers import adapter_inbound, messages_of, reply
from tests.conftest import serving
from tests.factories import (
    JWT_SECRET,
    Backend,
    TenantCtx,
    expect,
    expect_error,
    inbound,
    make_tenant,
)
from tests.s3_server import remove_bucket, s3_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50


def _files(data: bytes, filename: str = "photo.png", content_type: str = "image/png") -> Any:
    return {"file": (filename, data, content_type)}


async def upload(
    t: TenantCtx, data: bytes, filename: str = "photo.png", content_type: str = "image/png"
) -> dict[str, Any]:
    response = await t.client.post(
        "/v1/attachments", files=_files(data, filename, content_type), headers=t.agent.headers
    )
    result: dict[str, Any] = expect(response, 201)
    return result


async def test_agent_uploads_and_viewer_downloads(tenant: TenantCtx) -> None:
    data = PNG + os.urandom(8)  # a key no other test has
    created = await upload(tenant, data)
    key = hashlib.sha256(data).hexdigest()
    assert created["key"] == key
    assert (created["size"], created["content_type"], created["filename"]) == (
        len(data),
        "image/png",
        "photo.png",
    )
    assert created["url"] == f"/v1/attachments/{key}"
    assert created["message_attachment"] == {
        "type": "image",
        "storage_key": key,
        "filename": "photo.png",
        "mime_type": "image/png",
        "size": len(data),
    }
    response = await tenant.client.get(created["url"], headers=tenant.viewer.headers)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-disposition"] == 'inline; filename="photo.png"'
    assert response.headers["etag"] == f'"{key}"'
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    again = await tenant.client.get(
        created["url"], headers={**tenant.viewer.headers, "If-None-Match": f'"{key}"'}
    )
    assert again.status_code == 304
    assert again.content == b""
    saved = await tenant.client.get(
        created["url"], params={"download": "true"}, headers=tenant.viewer.headers
    )
    assert saved.headers["content-disposition"] == 'attachment; filename="photo.png"'


async def test_upload_is_for_agents_and_needs_a_file(tenant: TenantCtx) -> None:
    client = tenant.client
    expect_error(
        await client.post("/v1/attachments", files=_files(PNG), headers=tenant.viewer.headers),
        403,
        "forbidden",
    )
    expect_error(await client.post("/v1/attachments", files=_files(PNG)), 401, "unauthorized")
    for body in ({"json": {"file": "x"}}, {"files": {"other": ("a.png", PNG, "image/png")}}):
        error = expect_error(
            await client.post("/v1/attachments", headers=tenant.agent.headers, **body),
            422,
            "validation_error",
        )
        assert "field named 'file'" in error["message"]
    two = [("file", ("a.png", PNG, "image/png")), ("file", ("b.png", PNG, "image/png"))]
    expect_error(
        await client.post("/v1/attachments", files=two, headers=tenant.agent.headers),
        400,
        "bad_request",
    )
    for content_type, body in (
        ("multipart/form-data; boundary=b", b"--nope\r\nContent-Disposition: form-data\r\n\r\nx"),
        ("multipart/form-data", b"xx"),
    ):
        expect_error(
            await client.post(
                "/v1/attachments",
                content=body,
                headers={**tenant.agent.headers, "Content-Type": content_type},
            ),
            400,
            "bad_request",
        )


async def test_filenames_and_types_are_cleaned_up(tenant: TenantCtx) -> None:
    pdf = b"%PDF-1.7 " + os.urandom(8)
    created = await upload(tenant, pdf, "../../etc/Rechnung März.pdf", "application/octet-stream")
    assert created["filename"] == "Rechnung März.pdf"
    assert created["content_type"] == "application/pdf"  # from the name
    response = await tenant.client.get(created["url"], headers=tenant.viewer.headers)
    assert response.content == pdf
    # Not shown inline (a PDF viewer cannot run sandboxed); the UTF-8 name survives.
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Rechnung M_rz.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"
    )


async def test_a_file_above_the_api_body_limit_but_within_the_attachment_limit(
    tenant: TenantCtx,
) -> None:
    data = os.urandom(tenant.backend.settings.api.max_body_bytes + 300_000)
    created = await upload(tenant, data, "archive.zip", "application/zip")
    response = await tenant.client.get(created["url"], headers=tenant.viewer.headers)
    assert response.content == data
    assert response.headers["content-disposition"].startswith("attachment;")


async def test_keys_of_other_tenants_and_bad_keys(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    data = PNG + os.urandom(8)
    created = await upload(tenant, data)
    for headers in (other_tenant.viewer.headers, other_tenant.key_headers):
        expect_error(await tenant.client.get(created["url"], headers=headers), 404, "not_found")
    # Not even a 304 tells another tenant that the key exists.
    expect_error(
        await tenant.client.get(
            created["url"], headers={**other_tenant.viewer.headers, "If-None-Match": "*"}
        ),
        404,
    )
    for bad in ("0" * 63, created["key"].upper(), "..%2F..%2Fetc%2Fpasswd", "x" * 64):
        response = await tenant.client.get(f"/v1/attachments/{bad}", headers=tenant.viewer.headers)
        assert response.status_code in (404, 422), (bad, response.text)
        expect_error(response, response.status_code)
    expect_error(
        await tenant.client.get(f"/v1/attachments/{'0' * 64}", headers=tenant.viewer.headers),
        404,
        "not_found",
    )
    # The other tenant holding the same bytes may read them: it uploaded them too.
    await upload(other_tenant, data, "mine.png")
    response = await tenant.client.get(created["url"], headers=other_tenant.viewer.headers)
    assert response.content == data
    assert response.headers["content-disposition"] == 'inline; filename="mine.png"'


async def test_message_attachments_are_downloadable_by_their_tenant(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    jpeg = b"\xff\xd8" + os.urandom(64)
    # As the channels' webhooks store media: into storage, then onto the message.
    blob = await tenant.backend.runtime.attachments.put(jpeg, "image/jpeg")
    stored = {
        "type": "image",
        "status": "stored",
        "storage_key": blob.key,
        "mime_type": "image/jpeg",
    }
    gone = {"type": "audio", "status": "unavailable", "error": "media expired"}
    created = await adapter_inbound(tenant, "see photo", [stored, gone])
    url = f"/v1/attachments/{blob.key}"
    [message] = await messages_of(tenant, created["conversation_id"])
    assert message["attachments"] == [{**stored, "download_url": url}, gone]
    assert "download_url" not in message["attachments"][1]

    response = await tenant.client.get(url, headers=tenant.viewer.headers)
    assert response.content == jpeg
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-disposition"] == 'inline; filename="attachment.jpg"'
    expect_error(await tenant.client.get(url, headers=other_tenant.viewer.headers), 404)

    # A message naming a key whose bytes are not in storage: a 404 that says so.
    missing = hashlib.sha256(os.urandom(16)).hexdigest()
    await adapter_inbound(
        tenant, "lost", [{"type": "document", "storage_key": missing, "filename": "x.pdf"}]
    )
    error = expect_error(
        await tenant.client.get(f"/v1/attachments/{missing}", headers=tenant.viewer.headers),
        404,
    )
    assert "missing from storage" in error["message"]


# --- limits, on an API of its own with small ones ----------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def small(tmp_path: Path) -> AsyncIterator[Backend]:
    storage = StorageSettings(max_attachment_bytes=2048, allowed_types=["image/*"])
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET, storage=storage)
    await upgrade_async(settings)
    async with serving("sqlite", settings) as ready:
        yield ready


@pytest_asyncio.fixture(loop_scope="session")
async def small_tenant(small: Backend) -> TenantCtx:
    return await make_tenant(small)


async def test_size_and_type_limits_answer_413_and_415(small_tenant: TenantCtx) -> None:
    t = small_tenant
    post = t.client.post
    error = expect_error(
        await post("/v1/attachments", files=_files(b"x" * 2049), headers=t.agent.headers),
        413,
        "too_large",
    )
    assert "2048-byte limit" in error["message"]
    error = expect_error(
        await post(
            "/v1/attachments",
            files=_files(b"<html>", "page.html", "text/html"),
            headers=t.agent.headers,
        ),
        415,
        "type_not_allowed",
    )
    assert "text/html" in error["message"]
    # Far past the limit: refused from the declared length, before the body is read...
    error = expect_error(
        await post("/v1/attachments", files=_files(b"x" * 200_000), headers=t.agent.headers),
        413,
        "payload_too_large",
    )

    # ... and without a declared length, as soon as the body passes it.
    async def chunked() -> AsyncIterator[bytes]:
        yield b"--b\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n"
        yield b"Content-Type: image/png\r\n\r\n"
        for _ in range(20):
            yield b"x" * 10_000

    response = await post(
        "/v1/attachments",
        content=chunked(),
        headers={**t.agent.headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert "content-length" not in response.request.headers
    expect_error(response, 413, "payload_too_large")
    assert expect(
        await post("/v1/attachments", files=_files(b"x" * 2048), headers=t.agent.headers), 201
    )


# --- the S3 store behind the API ---------------------------------------------------------


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Backend]:
    """An API on `settings` with its lifespan run (the store's start among it)."""
    runtime = Runtime.build(settings)
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://relaydesk.test") as client,
        ):
            yield Backend("sqlite", settings, runtime, client)
    finally:
        await runtime.close()


@pytest.mark.s3
async def test_upload_and_download_through_the_s3_store(tmp_path: Path) -> None:
    storage = StorageSettings(backend="s3", s3=s3_settings())
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET, storage=storage)
    await upgrade_async(settings)
    async with started(settings) as backend:  # the start creates the bucket
        t = await make_tenant(backend)
        data = PNG + os.urandom(300_000)
        created = await upload(t, data)
        response = await t.client.get(created["url"], headers=t.viewer.headers)
        assert response.content == data
        assert response.headers["content-length"] == str(len(data))
        ready = expect(await t.client.get("/readyz"), 200)
        assert ready["checks"]["storage"] == {"status": "up"}
        store = backend.runtime.attachments
        assert isinstance(store, S3AttachmentStore)
        head = store.client.head_object(Bucket=store.bucket, Key=store.object_name(created["key"]))
        assert head["ContentType"] == "image/png"
        remove_bucket(store)


@pytest.mark.s3
async def test_the_api_does_not_start_without_its_bucket(tmp_path: Path) -> None:
    storage = StorageSettings(backend="s3", s3=s3_settings(create_bucket=False))
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET, storage=storage)
    with pytest.raises(StorageUnavailable, match="does not exist"):
        async with started(settings):
            pass
    async with serving("sqlite", settings) as backend:
        ready = expect(await backend.client.get("/readyz"), 503)
        assert ready["checks"]["storage"]["status"] == "down"


# --- migration 0007 -----------------------------------------------------------------------


def _drift(connection: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return [d for d in found if "attachments" in str(d) and "messages" not in str(d)]


async def test_migration_0007_matches_the_model(backend: Backend) -> None:
    async with backend.runtime.engine.connect() as connection:
        assert await connection.run_sync(_drift) == []
        if backend.name == "postgres":
            found = await connection.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_attachments'")
            )
            assert "gin" in found
            assert "jsonb_path_ops" in found


def test_migration_0007_downgrades_and_upgrades(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=JWT_SECRET)
    upgrade(settings)
    command.downgrade(alembic_config(settings), "0006")
    engine = create_engine(f"sqlite:///{tmp_path / 'relaydesk.db'}")
    try:
        with engine.connect() as connection:
            assert "attachments" not in inspect(connection).get_table_names()
        upgrade(settings)
        with engine.connect() as connection:
            assert "attachments" in inspect(connection).get_table_names()
    finally:
        engine.dispose()


async def test_a_key_names_a_file_only_for_the_tenant_that_knows_it(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    """Knowing another tenant's SHA-256 reaches nothing: neither an integration's
    inbound message nor an agent's reply may carry a key the tenant never uploaded or
    received, which would otherwise make the file readable here."""
    theirs = await upload(other_tenant, os.urandom(64) + PNG, "theirs.png")
    stolen = {"type": "image", "storage_key": theirs["key"], "mime_type": "image/png"}
    expect_error(await other_tenant.client.get(theirs["url"], headers=tenant.viewer.headers), 404)
    refused = await tenant.client.post(
        "/v1/inbound",
        json={
            "channel_id": tenant.channel_id,
            "customer": {"external_id": "thief"},
            "text": "look",
            "attachments": [stolen],
            "provider_message_id": "steal-1",
        },
        headers=tenant.key_headers,
    )
    expect_error(refused, 422, "unknown_attachment")
    created = await inbound(tenant, text="hello")
    expect_error(
        await reply(tenant, created["conversation_id"], {"attachments": [stolen]}),
        422,
        "unknown_attachment",
    )
    expect_error(await tenant.client.get(theirs["url"], headers=tenant.viewer.headers), 404)

    # Its own upload, named by key alone, is accepted with the type and name it was given.
    mine = await upload(tenant, os.urandom(64) + PNG, "mine.png")
    sent = expect(
        await reply(tenant, created["conversation_id"], {"attachments": [{"key": mine["key"]}]}),
        201,
    )
    [attachment] = sent["attachments"]
    assert (attachment["storage_key"], attachment["mime_type"]) == (mine["key"], "image/png")
    assert attachment["filename"] == "mine.png"
    assert attachment["download_url"] == mine["url"]
