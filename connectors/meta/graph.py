"""The Graph API client Meta's channels share: bearer token, bounded retries, Meta's errors.

429, 5xx and transport errors are retried with exponential backoff, a bounded number of
times (one try for replies: the delivery worker retries those, api/services/
delivery_worker.py); any other error is permanent and raised with Meta's error code and
message. A `Retry-After` the provider sent travels on the error."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx

from connectors.sender import SendOutcome
from core.settings import ChannelSettings

logger = logging.getLogger(__name__)


class GraphError(Exception):
    """A Graph API call that failed for good (after retries, where retrying made sense)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: int | None,
        retryable: bool,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after_s = retry_after_s

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_s: float = 0.25
    timeout_s: float = 15.0

    @classmethod
    def of(cls, settings: ChannelSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.send_max_attempts,
            backoff_s=settings.send_backoff_ms / 1000,
            timeout_s=settings.http_timeout_s,
        )

    @classmethod
    def single(cls, settings: ChannelSettings) -> RetryPolicy:
        """One try per call: for sends, which the delivery worker retries itself."""
        return cls(max_attempts=1, backoff_s=0.0, timeout_s=settings.http_timeout_s)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


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
    return GraphError(
        message,
        status=response.status_code,
        code=code,
        retryable=retryable,
        retry_after_s=retry_after(response.headers.get("Retry-After")),
    )


def _permanent(message: str, status: int | None = None) -> GraphError:
    return GraphError(message, status=status, code=None, retryable=False)


class MetaGraph:
    """One channel's Graph API session (use as an async context manager)."""

    def __init__(
        self,
        access_token: str,
        base_url: str,
        policy: RetryPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.base = base_url.rstrip("/")
        self._token = access_token
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        # Built on the first call, not when opened: an httpx client builds an SSL context
        # (~18 ms of CPU), and most webhook bodies (text) never call the Graph API.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.policy.timeout_s, transport=self._transport)
        return self._http

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def call(
        self, method: str, url: str, *, authorized: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """The successful answer, after retrying transient failures; GraphError otherwise."""
        headers = {"Authorization": f"Bearer {self._token}"} if authorized else {}
        last: GraphError | None = None
        for attempt in range(self.policy.max_attempts):
            if attempt:
                await asyncio.sleep(self.policy.backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._client.request(method, url, headers=headers, **kwargs)
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

    async def post_message(self, node: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /{node}/messages; Meta's JSON answer."""
        response = await self.call("POST", f"{self.base}/{node}/messages", json=payload)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise _permanent("the send answer is not a JSON object", response.status_code)
        return answer

    async def download(
        self, url: str, max_bytes: int, *, authorized: bool = True
    ) -> httpx.Response:
        """A media download, refused when larger than `max_bytes`."""
        response = await self.call("GET", url, authorized=authorized)
        if len(response.content) > max_bytes:
            raise _permanent(f"media of {len(response.content)} bytes exceeds the limit")
        return response


def missing_id(status: int | None = None) -> GraphError:
    return _permanent("the send answer carries no message id", status)


def too_large(size: int, max_bytes: int) -> GraphError:
    return _permanent(f"media of {size} bytes exceeds the {max_bytes}-byte limit")


def send_failure(exc: GraphError) -> SendOutcome:
    """A failed send as the delivery worker reads it."""
    return SendOutcome(
        error=exc.as_dict(), retryable=exc.retryable, retry_after_s=exc.retry_after_s
    )
