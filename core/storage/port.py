"""The attachment storage port: what every adapter offers, the size and type limits, and
the errors callers handle.

Blobs are content-addressed (the key is the SHA-256 of the bytes), so storing the same
file twice (a webhook delivered again, one image sent to two threads) keeps one copy."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

# Bytes handed to a download per chunk: large enough that a 25 MB file is ~100 chunks.
CHUNK_BYTES = 256 * 1024
_KEY = re.compile(r"[0-9a-f]{64}")
_HASH_INLINE_BYTES = 256 * 1024


class AttachmentRejected(ValueError):
    """A blob the limits refuse; `code` says which limit (too_large, type_not_allowed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StorageUnavailable(RuntimeError):
    """The store did not answer or refused the request (server down, wrong credentials,
    missing bucket): nothing was stored, and the caller may try again later."""


@dataclass(frozen=True)
class StoredBlob:
    key: str  # sha256 hex of the content
    size: int
    content_type: str


@dataclass(frozen=True)
class BlobStream:
    """An opened blob: its size, and its bytes in chunks (to be iterated once)."""

    size: int
    chunks: AsyncIterator[bytes]


class AttachmentStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        """Store `data`; raises AttachmentRejected when a limit refuses it."""

    async def get(self, key: str) -> bytes:
        """The bytes stored under `key`; KeyError when there are none."""

    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key` (False for anything not a key)."""

    async def open(self, key: str) -> BlobStream:
        """The blob under `key` as a stream, for downloads; KeyError when there is none."""

    async def start(self) -> None:
        """Make the store ready (its directory or bucket); StorageUnavailable with the
        reason when it cannot be."""

    async def ping(self) -> None:
        """Return when the store answers; raise otherwise (readiness probes)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    allowed_types: tuple[str, ...]

    def check(self, size: int, content_type: str) -> str:
        """The normalized content type, once size and type are within the limits."""
        self.check_size(size)
        bare = content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
        if not any(fnmatch.fnmatchcase(bare, pattern) for pattern in self.allowed_types):
            raise AttachmentRejected(
                "type_not_allowed", f"attachments of type {bare!r} are not allowed"
            )
        return bare

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise AttachmentRejected(
                "too_large", f"attachment of {size} bytes exceeds the {self.max_bytes}-byte limit"
            )


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def key_of(data: bytes) -> str:
    """`content_key(data)`, off the event loop for large blobs (hashing 25 MB holds a
    core for ~20 ms; hashlib releases the GIL while it works)."""
    if len(data) < _HASH_INLINE_BYTES:
        return content_key(data)
    return await asyncio.to_thread(content_key, data)


def is_key(value: str) -> bool:
    """Whether `value` has the form of a key (64 lowercase hex digits)."""
    return _KEY.fullmatch(value) is not None


def checked_key(key: str) -> str:
    # Keys come from stored rows and URLs; refuse anything that is not a digest (no paths).
    if not is_key(key):
        raise KeyError(key)
    return key
