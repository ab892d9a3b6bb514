"""A local-directory store (the default) and its in-memory twin."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from core.storage.port import (
    CHUNK_BYTES,
    BlobStream,
    Limits,
    StorageUnavailable,
    StoredBlob,
    checked_key,
    key_of,
)


class LocalAttachmentStore:
    """Files under `root/ab/cd/<sha256>`, written atomically (temp file, then rename)."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self.limits = limits

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:4] / key

    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        bare = self.limits.check(len(data), content_type)
        key = await key_of(data)
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
        path = self._path(checked_key(key))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def exists(self, key: str) -> bool:
        try:
            path = self._path(checked_key(key))
        except KeyError:
            return False
        return await asyncio.to_thread(path.is_file)

    async def open(self, key: str) -> BlobStream:
        path = self._path(checked_key(key))
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        return BlobStream(os.fstat(handle.fileno()).st_size, _file_chunks(handle))

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create attachment dir {self.root}: {exc}") from exc

    async def ping(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK):
            raise StorageUnavailable(f"attachment dir {self.root} is missing or not writable")


async def _file_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


class MemoryAttachmentStore:
    """The in-memory twin, for tests and throwaway runs."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        bare = self.limits.check(len(data), content_type)
        key = await key_of(data)
        self.blobs.setdefault(key, data)
        return StoredBlob(key, len(data), bare)

    async def get(self, key: str) -> bytes:
        return self.blobs[key]

    async def exists(self, key: str) -> bool:
        return key in self.blobs

    async def open(self, key: str) -> BlobStream:
        data = self.blobs[key]
        return BlobStream(len(data), _memory_chunks(data))

    async def start(self) -> None:
        return None

    async def ping(self) -> None:
        return None


async def _memory_chunks(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])
