"""The Graph API calls the WhatsApp channel makes: media download and upload, message
send, and the business account's message templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from connectors.meta.graph import GraphError, MetaGraph, RetryPolicy, missing_id, too_large
from connectors.whatsapp.config import WhatsAppConfig

__all__ = ["GraphClient", "GraphError", "RetryPolicy"]


class GraphClient(MetaGraph):
    def __init__(
        self,
        config: WhatsAppConfig,
        policy: RetryPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            config.access_token, str(config.graph_api_base_url), policy, transport=transport
        )
        self.config = config

    async def send(self, payload: dict[str, Any]) -> str:
        """POST /{phone_number_id}/messages; the provider's message id (wamid)."""
        answer = await self.post_message(self.config.phone_number_id, payload)
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise missing_id() from None

    async def upload_media(self, data: bytes, content_type: str, filename: str) -> str:
        """POST /{phone_number_id}/media (multipart: file, type, messaging_product); the
        media id a message then names instead of a link."""
        response = await self.call(
            "POST",
            f"{self.base}/{self.config.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": content_type},
            files={"file": (filename, data, content_type)},
        )
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise GraphError(
                "the upload answer carries no media id",
                status=response.status_code,
                code=None,
                retryable=False,
            ) from None

    async def message_templates(self, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every template of the business account: GET /{waba_id}/message_templates, page
        after page while the answer has a `paging.next`."""
        first = f"{self.base}/{self.config.waba_id}/message_templates"
        fields = {"fields": "id,name,language,status,category,components", "limit": page_size}
        url: str | None = first
        params: dict[str, Any] | None = fields
        while url is not None:
            answer = (await self.call("GET", url, params=params)).json()
            if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
                raise GraphError(
                    "the templates answer carries no `data` list",
                    status=200,
                    code=None,
                    retryable=False,
                )
            for template in answer["data"]:
                if isinstance(template, dict):
                    yield template
            url, params = _next_page(answer.get("paging"), first, fields)

    async def fetch_media(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """The media's bytes and MIME type: GET /{media-id} gives a short-lived URL, which
        is downloaded with the same bearer token."""
        info = (await self.call("GET", f"{self.base}/{media_id}")).json()
        url, mime = info.get("url"), str(info.get("mime_type") or "application/octet-stream")
        if not isinstance(url, str) or not url:
            raise GraphError(
                "the media answer carries no url", status=200, code=None, retryable=False
            )
        declared = info.get("file_size")
        if isinstance(declared, int) and declared > max_bytes:
            raise too_large(declared, max_bytes)
        response = await self.download(url, max_bytes)
        # The type Meta declared for the media, not the download's (often generic) header.
        return response.content, mime


def _next_page(
    paging: Any, first: str, fields: dict[str, Any]
) -> tuple[str | None, dict[str, Any] | None]:
    """Where the next page is: none without `paging.next`; else the `after` cursor asked
    of our own base URL (so a configured proxy keeps serving every page), or `next` as
    given when there is no cursor."""
    if not isinstance(paging, dict) or not isinstance(paging.get("next"), str):
        return None, None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    if isinstance(after, str) and after:
        return first, {**fields, "after": after}
    return str(paging["next"]), None
