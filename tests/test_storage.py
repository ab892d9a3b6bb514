"""Attachment storage: one contract over every adapter (local directory, in-memory twin, and
S3 against the local S3-compatible server), then what is particular to each."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr, ValidationError

from core.settings import Settings, StorageSettings
from core.storage import (
    AttachmentRejected,
    AttachmentStore,
    Limits,
    LocalAttachmentStore,
    MemoryAttachmentStore,
    StorageUnavailable,
    build_attachment_store,
)
from core.storage.port import CHUNK_BYTES, content_key
from core.storage.s3 import S3AttachmentStore
from tests.s3_server import remove_bucket, s3_settings

LIMITS = Limits(max_bytes=1024, allowed_types=("image/*", "application/pdf"))
BIG = Limits(max_bytes=8 * 1024 * 1024, allowed_types=("application/*",))
KINDS = ["local", "memory", pytest.param("s3", marks=pytest.mark.s3)]


async def _store(kind: str, root: Path, limits: Limits) -> AttachmentStore:
    store: AttachmentStore
    if kind == "local":
        store = LocalAttachmentStore(root, limits)
    elif kind == "memory":
        store = MemoryAttachmentStore(limits)
    else:
        store = S3AttachmentStore(s3_settings(), limits)
    await store.start()
    return store


@pytest_asyncio.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AttachmentStore]:
    made = await _store(request.param, tmp_path, LIMITS)
    yield made
    remove_bucket(made)


async def _read(store: AttachmentStore, key: str) -> tuple[int, list[bytes]]:
    blob = await store.open(key)
    return blob.size, [chunk async for chunk in blob.chunks]


async def test_put_get_and_dedupe(store: AttachmentStore) -> None:
    first = await store.put(b"png-bytes", "image/png; charset=binary")
    again = await store.put(b"png-bytes", "image/png")
    assert first == again
    assert first.key == content_key(b"png-bytes")
    assert first.content_type == "image/png"
    assert first.size == 9
    assert await store.get(first.key) == b"png-bytes"
    assert await _read(store, first.key) == (9, [b"png-bytes"])
    other = await store.put(b"%PDF-1.7", "application/pdf")
    assert other.key != first.key
    assert await store.get(other.key) == b"%PDF-1.7"
    await store.ping()


async def test_limits_refuse_with_the_reason(store: AttachmentStore) -> None:
    with pytest.raises(AttachmentRejected, match="1024-byte limit") as too_big:
        await store.put(b"x" * 1025, "image/png")
    assert too_big.value.code == "too_large"
    with pytest.raises(AttachmentRejected, match="application/x-msdownload") as bad_type:
        await store.put(b"MZ", "application/x-msdownload")
    assert bad_type.value.code == "type_not_allowed"
    # Nothing refused was stored.
    for data in (b"x" * 1025, b"MZ"):
        with pytest.raises(KeyError):
            await store.get(content_key(data))
    assert (await store.put(b"x" * 1024, "IMAGE/PNG")).content_type == "image/png"


@pytest.mark.parametrize("key", ["0" * 64, "../../etc/passwd", "", "A" * 64, "0" * 63])
async def test_missing_and_malformed_keys_are_key_errors(store: AttachmentStore, key: str) -> None:
    with pytest.raises(KeyError):
        await store.get(key)
    with pytest.raises(KeyError):
        await store.open(key)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_big_blob_streams_back_in_chunks(tmp_path: Path, kind: str) -> None:
    store = await _store(kind, tmp_path, BIG)
    data = os.urandom(5 * 1024 * 1024 + 17)
    try:
        blob = await store.put(data, "application/zip")
        assert blob.size == len(data)
        size, chunks = await _read(store, blob.key)
        assert size == len(data)
        assert b"".join(chunks) == data
        assert len(chunks) > 1
        assert max(len(c) for c in chunks) <= CHUNK_BYTES
        assert await store.get(blob.key) == data
    finally:
        remove_bucket(store)


async def test_local_store_is_content_addressed_under_the_data_dir(tmp_path: Path) -> None:
    store = build_attachment_store(Settings(data_dir=tmp_path, jwt_secret="x" * 32))
    assert isinstance(store, LocalAttachmentStore)
    blob = await store.put(b"%PDF-1.7", "application/pdf")
    path = tmp_path / "attachments" / blob.key[:2] / blob.key[2:4] / blob.key
    assert path.read_bytes() == b"%PDF-1.7"
    with pytest.raises(KeyError):
        await store.get("../../etc/passwd")


async def test_local_store_start_and_ping(tmp_path: Path) -> None:
    store = LocalAttachmentStore(tmp_path / "new" / "dir", LIMITS)
    with pytest.raises(StorageUnavailable, match="missing or not writable"):
        await store.ping()
    await store.start()
    await store.ping()
    blocked = LocalAttachmentStore(tmp_path / "file" / "below", LIMITS)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageUnavailable, match="cannot create"):
        await blocked.start()


# --- S3 -----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def s3() -> AsyncIterator[S3AttachmentStore]:
    store = S3AttachmentStore(s3_settings(prefix="files/in"), LIMITS)
    await store.start()
    yield store
    remove_bucket(store)


@pytest.mark.s3
async def test_s3_objects_are_named_by_prefix_and_key_with_their_type(
    s3: S3AttachmentStore,
) -> None:
    blob = await s3.put(b"\x89PNG", "image/png")
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"files/in/{blob.key}")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == 4
    listed = s3.client.list_objects_v2(Bucket=s3.bucket)
    assert [o["Key"] for o in listed["Contents"]] == [f"files/in/{blob.key}"]


@pytest.mark.s3
async def test_s3_duplicate_put_sends_no_bytes(s3: S3AttachmentStore) -> None:
    calls: list[str] = []
    s3.client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    await s3.put(b"same", "image/png")
    await s3.put(b"same", "image/png")
    assert calls == ["HeadObject", "PutObject", "HeadObject"]


@pytest.mark.s3
async def test_s3_presigned_url_reads_without_credentials(s3: S3AttachmentStore) -> None:
    blob = await s3.put(b"%PDF-1.7 signed", "application/pdf")
    async with httpx.AsyncClient() as client:
        fetched = await client.get(s3.presigned_url(blob.key, ttl_s=60))
        assert fetched.status_code == 200
        assert fetched.content == b"%PDF-1.7 signed"
        unsigned = await client.get(f"{s3.settings.endpoint_url}/{s3.bucket}/files/in/{blob.key}")
        assert unsigned.status_code == 403
    with pytest.raises(KeyError):
        s3.presigned_url("../other-bucket/x")


@pytest.mark.s3
async def test_s3_missing_bucket_is_an_error_unless_it_may_be_created() -> None:
    settings = s3_settings(create_bucket=False)
    store = S3AttachmentStore(settings, LIMITS)
    with pytest.raises(StorageUnavailable, match=r"does not exist .*CREATE_BUCKET=true"):
        await store.start()
    with pytest.raises(StorageUnavailable, match=r"bucket '.+' does not exist"):
        await store.put(b"data", "image/png")
    with pytest.raises(StorageUnavailable):
        await store.ping()
    creating = S3AttachmentStore(settings.model_copy(update={"create_bucket": True}), LIMITS)
    await creating.start()
    await creating.start()  # already there: nothing to do
    await store.start()
    await store.ping()
    remove_bucket(store)


@pytest.mark.s3
async def test_s3_wrong_credentials_and_dead_endpoint_say_so(s3: S3AttachmentStore) -> None:
    wrong = S3AttachmentStore(
        s3.settings.model_copy(update={"secret_access_key": SecretStr("wrong")}), LIMITS
    )
    with pytest.raises(StorageUnavailable, match="refused the credentials"):
        await wrong.put(b"data", "image/png")
    dead = S3AttachmentStore(
        s3.settings.model_copy(update={"endpoint_url": "http://127.0.0.1:1", "max_attempts": 1}),
        LIMITS,
    )
    with pytest.raises(StorageUnavailable, match=r"cannot store an attachment at http://127"):
        await dead.put(b"data", "image/png")
    with pytest.raises(StorageUnavailable, match="cannot read an attachment"):
        await dead.get("0" * 64)


@pytest.mark.s3
@pytest.mark.parametrize("style", ["auto", "virtual"])
async def test_s3_other_addressing_styles_reach_the_same_objects(
    s3: S3AttachmentStore, style: str
) -> None:
    blob = await s3.put(b"\xff\xd8jpeg", "image/jpeg")
    other = S3AttachmentStore(s3.settings.model_copy(update={"addressing_style": style}), LIMITS)
    assert await other.get(blob.key) == b"\xff\xd8jpeg"


@pytest.mark.s3
def test_s3_backend_is_built_from_settings(tmp_path: Path) -> None:
    storage = StorageSettings(backend="s3", s3=s3_settings(prefix="/a/b/"))
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 32, storage=storage)
    store = build_attachment_store(settings)
    assert isinstance(store, S3AttachmentStore)
    assert store.object_name("0" * 64) == "a/b/" + "0" * 64
    assert store.limits.max_bytes == settings.storage.max_attachment_bytes


@pytest.mark.parametrize(
    ("storage", "reason"),
    [
        ({"backend": "s3"}, "needs a bucket"),
        ({"backend": "s3", "s3": {"bucket": "Bad_Bucket"}}, "not a valid bucket name"),
        ({"s3": {"bucket": "ok-bucket", "access_key_id": "AKIA"}}, "both"),
        ({"s3": {"endpoint_url": "minio:9000"}}, "must start with http"),
        ({"backend": "gcs"}, "'local' or 's3'"),
    ],
)
def test_storage_settings_are_checked_at_start(
    tmp_path: Path, storage: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        Settings(data_dir=tmp_path, jwt_secret="x" * 32, storage=storage)


def test_storage_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYDESK_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("RELAYDESK_STORAGE__S3__BUCKET", "support-files")
    monkeypatch.setenv("RELAYDESK_STORAGE__S3__ENDPOINT_URL", "http://minio:9000/")
    monkeypatch.setenv("RELAYDESK_STORAGE__S3__ACCESS_KEY_ID", "minio")
    monkeypatch.setenv("RELAYDESK_STORAGE__S3__SECRET_ACCESS_KEY", "minio-secret")
    monkeypatch.setenv("RELAYDESK_STORAGE__S3__ADDRESSING_STYLE", "path")
    s3 = Settings(data_dir=tmp_path, jwt_secret="x" * 32).storage.s3
    assert (s3.bucket, s3.endpoint_url, s3.addressing_style) == (
        "support-files",
        "http://minio:9000",
        "path",
    )
    assert s3.secret_access_key.get_secret_value() == "minio-secret"
    assert "minio-secret" not in repr(s3)
