"""Uploading attachments, and finding the ones a tenant may read."""

from __future__ import annotations

import mimetypes
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, exists, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile

from api.errors import Unprocessable
from api.schemas.attachments import AttachmentPublic, download_url
from core.db.engine import dialect_name
from core.domain.attachments import Attachment
from core.domain.conversations import Message
from core.storage import AttachmentStore, Limits, is_key

if TYPE_CHECKING:
    from api.deps import Principal

FIELD = "file"
_OCTET = "application/octet-stream"


@dataclass(frozen=True)
class Readable:
    """What a download answers with, besides the bytes."""

    content_type: str
    filename: str


def clean_filename(raw: str | None) -> str:
    """The name without any directory part or control characters, at most 255 characters
    (it goes into a header and a column)."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255] or "attachment"


def _declared_type(upload: UploadFile, filename: str) -> str:
    declared = (upload.content_type or "").strip()
    if declared and declared.split(";", 1)[0].strip().lower() != _OCTET:
        return declared
    # Clients that do not know the type send none or octet-stream: go by the name.
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or declared or _OCTET


def kind(content_type: str) -> str:
    """The attachment `type` the channels know: image, audio, video or document."""
    family = content_type.split("/", 1)[0]
    return family if family in ("image", "audio", "video") else "document"


def file_of(form: FormData) -> UploadFile:
    """The one file of a multipart/form-data body, in the field `file`."""
    upload = form.get(FIELD)
    if not isinstance(upload, UploadFile):
        raise Unprocessable(
            f"send the file as multipart/form-data in a field named {FIELD!r}",
            details=[{"loc": ["body", FIELD], "type": "missing", "message": "Field required"}],
        )
    return upload


async def upload(
    session: AsyncSession,
    store: AttachmentStore,
    limits: Limits,
    principal: Principal,
    file: UploadFile,
) -> AttachmentPublic:
    """Store the file (refused with 413/415 past the limits) and record it for the tenant."""
    filename = clean_filename(file.filename)
    if file.size is not None:
        limits.check_size(file.size)  # before reading a byte of an oversized file
    data = await file.read()
    blob = await store.put(data, _declared_type(file, filename))
    record = Attachment(
        tenant_id=principal.tenant_id,
        key=blob.key,
        size=blob.size,
        content_type=blob.content_type,
        filename=filename,
        created_by_type=principal.actor_type,
        created_by=principal.actor_id,
    )
    session.add(record)
    await session.commit()
    return AttachmentPublic(
        key=blob.key,
        size=blob.size,
        content_type=blob.content_type,
        filename=filename,
        url=download_url(blob.key),
        message_attachment={
            "type": kind(blob.content_type),
            "storage_key": blob.key,
            "filename": filename,
            "mime_type": blob.content_type,
            "size": blob.size,
        },
        created_at=record.created_at,
    )


def _references(dialect: str, key: str) -> ColumnElement[bool]:
    """A message's attachments hold `key` (the GIN index answers it on PostgreSQL)."""
    if dialect == "postgresql":
        return type_coerce(Message.attachments, JSONB).contains([{"storage_key": key}])
    each = func.json_each(Message.attachments).table_valued("value")
    return exists(
        select(literal(1))
        .select_from(each)
        .where(func.json_extract(each.c.value, "$.storage_key") == key)
    )


async def readable(session: AsyncSession, tenant_id: uuid.UUID, key: str) -> Readable | None:
    """How the tenant knows `key`: a file it uploaded, else an attachment of one of its
    messages; None when it knows no such key (another tenant's file included)."""
    uploaded = (
        await session.execute(
            select(Attachment.content_type, Attachment.filename)
            .where(Attachment.tenant_id == tenant_id, Attachment.key == key)
            .order_by(Attachment.created_at.desc())
            .limit(1)
        )
    ).first()
    if uploaded is not None:
        return Readable(uploaded.content_type, uploaded.filename)
    attachments = await session.scalar(
        select(Message.attachments)
        .where(Message.tenant_id == tenant_id, _references(dialect_name(session), key))
        .limit(1)
    )
    for item in attachments or ():
        if item.get("storage_key") == key:
            return _from_message(item)
    return None


def _from_message(item: dict[str, Any]) -> Readable:
    content_type = str(item.get("mime_type") or _OCTET)
    name = item.get("filename")
    if not isinstance(name, str) or not name:
        # Media without a name (a WhatsApp photo): one from its type, e.g. attachment.jpg.
        name = "attachment" + (mimetypes.guess_extension(content_type, strict=False) or "")
    return Readable(content_type, clean_filename(name))


async def check_known(
    session: AsyncSession, tenant_id: uuid.UUID, attachments: list[dict[str, Any]]
) -> None:
    """422 for an attachment naming a stored file (`storage_key`) this tenant does not
    know: a key alone must never reach another tenant's file (a message carrying it
    would make it readable here). A known one missing its `mime_type` or `filename`
    gets them from what the tenant knows of the file."""
    for index, attachment in enumerate(attachments):
        key = attachment.get("storage_key")
        if key is None or attachment.get("url"):
            continue
        if not isinstance(key, str) or not is_key(key):
            raise Unprocessable(
                f"attachments[{index}].storage_key must be the SHA-256 (64 hex digits) of a "
                "stored attachment",
                code="invalid_attachment",
            )
        known = await readable(session, tenant_id, key)
        if known is None:
            raise Unprocessable(
                f"attachments[{index}] names no stored attachment of this tenant (upload it "
                "with POST /v1/attachments)",
                code="unknown_attachment",
            )
        attachment.setdefault("mime_type", known.content_type)
        attachment.setdefault("filename", known.filename)
