"""Attachment storage: content addressing, limits with clear reasons, the in-memory twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from core.storage import (
    AttachmentRejected,
    Limits,
    LocalAttachmentStore,
    MemoryAttachmentStore,
    build_attachment_store,
)

LIMITS = Limits(max_bytes=1024, allowed_types=("image/*", "application/pdf"))


@pytest.mark.parametrize("kind", ["local", "memory"])
async def test_put_get_and_limits(tmp_path: Path, kind: str) -> None:
    store = (
        LocalAttachmentStore(tmp_path, LIMITS) if kind == "local" else MemoryAttachmentStore(LIMITS)
    )
    first = await store.put(b"png-bytes", "image/png; charset=binary")
    again = await store.put(b"png-bytes", "image/png")
    assert first == again
    assert first.content_type == "image/png"
    assert first.size == 9
    assert await store.get(first.key) == b"png-bytes"
    with pytest.raises(AttachmentRejected, match="1024-byte limit") as too_big:
        await store.put(b"x" * 1025, "image/png")
    assert too_big.value.code == "too_large"
    with pytest.raises(AttachmentRejected, match="application/x-msdownload") as bad_type:
        await store.put(b"MZ", "application/x-msdownload")
    assert bad_type.value.code == "type_not_allowed"
    with pytest.raises(KeyError):
        await store.get("0" * 64)


async def test_local_store_is_content_addressed_under_the_data_dir(tmp_path: Path) -> None:
    store = build_attachment_store(Settings(data_dir=tmp_path, jwt_secret="x" * 32))
    blob = await store.put(b"%PDF-1.7", "application/pdf")
    path = tmp_path / "attachments" / blob.key[:2] / blob.key[2:4] / blob.key
    assert path.read_bytes() == b"%PDF-1.7"
    with pytest.raises(KeyError):
        await store.get("../../etc/passwd")
