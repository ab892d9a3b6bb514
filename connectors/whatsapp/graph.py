"""The few Graph API calls the WhatsApp channel makes: media download and message send.

429, 5xx and transport errors are retried with exponential backoff, a bounded number of
times; any other error is permanent and raised with Meta's error code and message."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.whatsapp.config import WhatsAppConfig

logger = logging.getLogger(__name__)


class GraphError(Exception):
    """A Graph API call that failed for good (after retries, where retrying made sense)."""

    def __init__(
        self, message: str, *, status: int | None, code: int | None, retryable: bool
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_s: float = 0.25
    timeout_s: float = 15.0


def _error_of(response: httpx.Response) -> GraphError:
    retryable = response.status_code == 429 or response.status_code >= 500
    code: int | None = None
    message = f"HTTP {response.status_code}"
    try:
        error = response.json().get("error") or {}
        code = int(error["code"]) if "code" in error else None
        message = str(error.get("message") or message)
    except (ValueError, AttributeError, TypeError):
        pass
    return GraphError(message, status=response.status_code, code=code, retryable=retryable)


class GraphClient:
    def __init__(
        self,
        config: WhatsAppConfig,
        policy: RetryPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.base = str(config.graph_api_base_url).rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=policy.timeout_s,
            headers={"Authorization": f"Bearer {config.access_token}"},
            transport=transport,
        )

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        last: GraphError | None = None
        for attempt in range(self.policy.max_attempts):
            if attempt:
                await asyncio.sleep(self.policy.backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                last = GraphError(
                    f"{type(exc).__name__}: {exc}", status=None, code=None, retryable=True
                )
            else:
                if response.is_success:
                    return response
                last = _error_of(response)
                if not last.retryable:
                    raise last
            logger.warning("Graph API %s %s failed (try %d): %s", method, url, attempt + 1, last)
        assert last is not None
        raise last

    async def send(self, payload: dict[str, Any]) -> str:
        """POST /{phone_number_id}/messages; the provider's message id (wamid)."""
        url = f"{self.base}/{self.config.phone_number_id}/messages"
        response = await self._call("POST", url, json=payload)
        try:
            return str(response.json()["messages"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise GraphError(
                "the send answer carries no message id",
                status=response.status_code,
                code=None,
                retryable=False,
            ) from None

    async def fetch_media(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """The media's bytes and MIME type: GET /{media-id} gives a short-lived URL, which
        is downloaded with the same bearer token."""
        info = (await self._call("GET", f"{self.base}/{media_id}")).json()
        url, mime = info.get("url"), str(info.get("mime_type") or "application/octet-stream")
        if not isinstance(url, str) or not url:
            raise GraphError(
                "the media answer carries no url", status=200, code=None, retryable=False
            )
        declared = info.get("file_size")
        if isinstance(declared, int) and declared > max_bytes:
            raise GraphError(
                f"media of {declared} bytes exceeds the {max_bytes}-byte limit",
                status=None,
                code=None,
                retryable=False,
            )
        response = await self._call("GET", url)
        if len(response.content) > max_bytes:
            raise GraphError(
                f"media of {len(response.content)} bytes exceeds the limit",
                status=None,
                code=None,
                retryable=False,
            )
        # The type Meta declared for the media, not the download's (often generic) header.
        return response.content, mime
