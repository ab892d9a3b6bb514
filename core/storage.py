"""Attachment storage: a small port, a local-directory adapter and an in-memory twin.

Blobs are content-addressed (the key is the SHA-256 of the bytes), so storing the same
file twice (a webhook delivered again, one image sent to two threads) keeps one copy.
An S3-compatible adapter is planned behind the same port."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.settings import Settings


class AttachmentRejected(ValueError):
    """A blob the limits refuse; `code` says which limit (too_large, type_not_allowed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StoredBlob:
    key: str  # sha256 hex of the content
    size: int
    content_type: str


class AttachmentStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        """Store `data`; raises AttachmentRejected when a limit refuses it."""

    async def get(self, key: str) -> bytes:
        """The bytes stored under `key`; KeyError when there are none."""

    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key` (False for anything not a key)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    allowed_types: tuple[str, ...]

    def check(self, size: int, content_type: str) -> str:
        """The normalized content type, once size and type are within the limits."""
        if size > self.max_bytes:
            raise AttachmentRejected(
                "too_large", f"attachment of {size} bytes exceeds the {self.max_bytes}-byte limit"
            )
        bare = content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
        if not any(fnmatch.fnmatchcase(bare, pattern) for pattern in self.allowed_types):
            raise AttachmentRejected(
                "type_not_allowed", f"attachments of type {bare!r} are not allowed"
            )
        return bare


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked_key(key: str) -> str:
    # Keys come back from stored rows; refuse anything that is not a digest (no paths).
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise KeyError(key)
    return key


class LocalAttachmentStore:
    """Files under `root/ab/cd/<sha256>`, written atomically (temp file, then rename)."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self.limits = limits

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:4] / key

    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        bare = self.limits.check(len(data), content_type)
        key = _key(data)
        await asyncio.to_thread(self._write, key, data)
        return StoredBlob(key, len(data), bare)

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        path = self._path(_checked_key(key))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def exists(self, key: str) -> bool:
        try:
            path = self._path(_checked_key(key))
        except KeyError:
            return False
        return await asyncio.to_thread(path.is_file)


class MemoryAttachmentStore:
    """The in-memory twin, for tests and throwaway runs."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        bare = self.limits.check(len(data), content_type)
        key = _key(data)
        self.blobs[key] = data
        return StoredBlob(key, len(data), bare)

    async def get(self, key: str) -> bytes:
        return self.blobs[key]

    async def exists(self, key: str) -> bool:
        return key in self.blobs


def build_attachment_store(settings: Settings) -> AttachmentStore:
    limits = Limits(settings.storage.max_attachment_bytes, tuple(settings.storage.allowed_types))
    return LocalAttachmentStore(settings.attachments_dir, limits)
