"""Schemas of uploaded attachments, and the download URL of a stored one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Output
from core.storage import is_key

DOWNLOAD_PATH = "/v1/attachments/{key}"


def download_url(key: str) -> str:
    return DOWNLOAD_PATH.format(key=key)


def stored_attachment_shape(attachment: dict[str, Any]) -> dict[str, Any]:
    """A reply's attachment naming a stored file as `key`/`content_type` in the shape
    messages keep (`storage_key`/`mime_type`), which senders and downloads read."""
    if attachment.get("url") or "key" not in attachment:
        return attachment
    shaped = {k: v for k, v in attachment.items() if k not in ("key", "content_type")}
    shaped.setdefault("storage_key", attachment["key"])
    if "content_type" in attachment:
        shaped.setdefault("mime_type", attachment["content_type"])
    return shaped


def with_download_urls(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Message attachments, each one in storage with the URL that reads it back."""
    shown = []
    for attachment in attachments:
        key = attachment.get("storage_key")
        if isinstance(key, str) and is_key(key) and attachment.get("status", "stored") == "stored":
            attachment = {**attachment, "download_url": download_url(key)}
        shown.append(attachment)
    return shown


class AttachmentPublic(Output):
    key: str = Field(description="SHA-256 of the content: the storage key.")
    size: int
    content_type: str
    filename: str
    url: str = Field(description="GET it (viewer role or above) to download the file.")
    message_attachment: dict[str, Any] = Field(
        description="The entry to put in a reply's `attachments` to send this file."
    )
    created_at: datetime
