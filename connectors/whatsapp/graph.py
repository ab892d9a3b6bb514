"""The Graph API calls the WhatsApp channel makes: media download and message send."""

from __future__ import annotations

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
