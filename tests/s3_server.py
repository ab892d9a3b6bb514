"""The local S3-compatible server started by `scripts/services up` (S3Proxy over a
directory, on loopback): settings for a bucket of one's own on it."""

from __future__ import annotations

import uuid
from typing import Any

from core.settings import S3Settings
from core.storage import AttachmentStore
from core.storage.s3 import S3AttachmentStore
from tests.conftest import require_env


def s3_settings(**overrides: Any) -> S3Settings:
    """A fresh bucket on the local server (created at the store's start)."""
    given: dict[str, Any] = {
        "bucket": f"relaydesk-test-{uuid.uuid4().hex[:16]}",
        "endpoint_url": require_env("RELAYDESK_TEST_S3_ENDPOINT"),
        "access_key_id": require_env("RELAYDESK_TEST_S3_ACCESS_KEY"),
        "secret_access_key": require_env("RELAYDESK_TEST_S3_SECRET_KEY"),
        "addressing_style": "path",
        "create_bucket": True,
        **overrides,
    }
    return S3Settings(**given)


def remove_bucket(store: AttachmentStore) -> None:
    """Delete an S3 store's test bucket and its objects (other stores: nothing to do)."""
    if not isinstance(store, S3AttachmentStore):
        return
    client = store.client
    listed = client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=store.bucket, Key=item["Key"])
    client.delete_bucket(Bucket=store.bucket)
