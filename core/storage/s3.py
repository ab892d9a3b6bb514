"""An S3-compatible store: AWS S3, MinIO, Ceph RGW, Cloudflare R2, S3Proxy...

boto3 runs in worker threads (its client is thread-safe): it is the reference client every
S3-compatible server is tested against, and unlike aiobotocore it does not pin botocore to
an older release than the one boto3 (and MLflow's S3 artifact store) wants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.settings import S3Settings
from core.storage.port import (
    CHUNK_BYTES,
    BlobStream,
    Limits,
    StorageUnavailable,
    StoredBlob,
    checked_key,
    is_key,
    key_of,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def build_client(settings: S3Settings) -> S3Client:
    """A client for `settings`; nothing is sent until the first call."""
    config = Config(
        s3={"addressing_style": settings.addressing_style},
        signature_version="s3v4",
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        # Checksums only where S3 requires them: several S3-compatible servers refuse the
        # CRC trailers newer botocore sends by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    secret = settings.secret_access_key.get_secret_value()
    # A session of its own: boto3's module-level default session is not thread-safe.
    client: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=secret or None,
        config=config,
    )
    return client


class S3AttachmentStore:
    """Objects `<prefix><sha256>` in one bucket, with their content type."""

    def __init__(
        self, settings: S3Settings, limits: Limits, client: S3Client | None = None
    ) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.limits = limits
        self.client = client or build_client(settings)
        self.where = settings.endpoint_url or f"AWS S3 ({settings.region})"

    def object_name(self, key: str) -> str:
        return f"{self.settings.prefix}{key}"

    async def _call(self, action: str, work: Callable[[], T]) -> T:
        """`work()` in a worker thread, its failures as StorageUnavailable with the reason
        (a missing object stays a KeyError, raised by `work` itself)."""
        try:
            return await asyncio.to_thread(work)
        except ClientError as exc:
            raise self._unavailable(action, exc) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot {action} at {self.where}: {exc}") from exc

    def _unavailable(self, action: str, exc: ClientError) -> StorageUnavailable:
        code = _code(exc)
        if code == "NoSuchBucket":
            return StorageUnavailable(
                f"cannot {action}: bucket {self.bucket!r} does not exist at {self.where}; "
                "create it or set RELAYDESK_STORAGE__S3__CREATE_BUCKET=true"
            )
        if code in _DENIED:
            return StorageUnavailable(
                f"cannot {action}: {self.where} refused the credentials for bucket "
                f"{self.bucket!r} ({code}); check RELAYDESK_STORAGE__S3__ACCESS_KEY_ID and "
                "RELAYDESK_STORAGE__S3__SECRET_ACCESS_KEY"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return StorageUnavailable(f"cannot {action} at {self.where}: {code} {message}".strip())

    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        bare = self.limits.check(len(data), content_type)
        key = await key_of(data)
        await self._call("store an attachment", lambda: self._put(key, data, bare))
        return StoredBlob(key, len(data), bare)

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        name = self.object_name(key)
        # The key is the content's hash: an object already there holds these bytes, and a
        # HEAD is cheaper than sending them again.
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
            return
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise
        self.client.put_object(
            Bucket=self.bucket,
            Key=name,
            Body=data,
            ContentType=content_type,
            ContentLength=len(data),
        )

    def _get_object(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.object_name(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise KeyError(key) from None
            raise

    async def get(self, key: str) -> bytes:
        checked_key(key)

        def read() -> bytes:
            body = self._get_object(key)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        return await self._call("read an attachment", read)

    async def exists(self, key: str) -> bool:
        if not is_key(key):
            return False

        def head() -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.object_name(key))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return False
                raise
            return True

        return await self._call("look up an attachment", head)

    async def open(self, key: str) -> BlobStream:
        checked_key(key)
        response = await self._call("read an attachment", lambda: self._get_object(key))
        return BlobStream(int(response["ContentLength"]), self._chunks(response["Body"]))

    async def _chunks(self, body: Any) -> AsyncIterator[bytes]:
        chunks: Iterator[bytes] = body.iter_chunks(CHUNK_BYTES)
        try:
            while chunk := await self._call("read an attachment", lambda: next(chunks, b"")):
                yield chunk
        finally:
            body.close()

    async def start(self) -> None:
        await self._call("open the attachment bucket", self._ensure_bucket)

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _MISSING | {"NoSuchBucket"}:
                raise
            if not self.settings.create_bucket:
                raise StorageUnavailable(
                    f"bucket {self.bucket!r} does not exist at {self.where}; create it or set "
                    "RELAYDESK_STORAGE__S3__CREATE_BUCKET=true"
                ) from None
        extra: dict[str, Any] = {}
        if self.settings.region != "us-east-1":
            # us-east-1 is S3's default location and refuses being named explicitly.
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **extra)
        except ClientError as exc:
            # Another process starting at the same moment made it first.
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise

    async def ping(self) -> None:
        await self._call("reach the attachment bucket", self._head_bucket)

    def _head_bucket(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def presigned_url(self, key: str, ttl_s: int = 900) -> str:
        """A URL that fetches the blob without credentials for `ttl_s` seconds (for a
        provider that takes media by link); computed locally, nothing is sent."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_name(checked_key(key))},
            ExpiresIn=ttl_s,
        )
        return url
