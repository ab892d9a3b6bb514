"""Attachment storage: a small port (port.py), a local-directory adapter and an in-memory
twin (local.py), and an S3-compatible adapter (s3.py, imported only when configured)."""

from __future__ import annotations

from core.settings import Settings
from core.storage.local import LocalAttachmentStore, MemoryAttachmentStore
from core.storage.port import (
    AttachmentRejected,
    AttachmentStore,
    BlobStream,
    Limits,
    StorageUnavailable,
    StoredBlob,
    is_key,
)

__all__ = [
    "AttachmentRejected",
    "AttachmentStore",
    "BlobStream",
    "Limits",
    "LocalAttachmentStore",
    "MemoryAttachmentStore",
    "StorageUnavailable",
    "StoredBlob",
    "build_attachment_store",
    "is_key",
    "limits_of",
]


def limits_of(settings: Settings) -> Limits:
    return Limits(settings.storage.max_attachment_bytes, tuple(settings.storage.allowed_types))


def build_attachment_store(settings: Settings) -> AttachmentStore:
    """The store `settings.storage` names; nothing is contacted until its first use."""
    limits = limits_of(settings)
    if settings.storage.backend == "s3":
        from core.storage.s3 import S3AttachmentStore

        return S3AttachmentStore(settings.storage.s3, limits)
    return LocalAttachmentStore(settings.attachments_dir, limits)
