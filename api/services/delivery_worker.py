"""The delivery worker: sends the replies requests stored `queued`, through their channel's
`ChannelSender`, and records what the provider said.

A reply is due when its `delivery_due_at` has passed. Claiming it (one short transaction;
on PostgreSQL `FOR UPDATE SKIP LOCKED`, so any number of workers share the queue; SQLite
takes its write lock for the transaction, which serializes claims) counts an attempt and
moves `delivery_due_at` to the end of a lease. The send runs outside any transaction; its
outcome is then written only if the reply still carries that attempt (a worker whose
lease ran out does not overwrite the one that claimed the reply after it):

- sent: `sent`, the provider's message id;
- a permanent error (a 4xx): `failed` with the provider's status, code and message;
- a transient one (429, 5xx, transport): due again after an exponential backoff with
  jitter (at least the provider's `Retry-After`), the error kept on the message; after
  `delivery_max_attempts` attempts or `delivery_max_age_s`, `failed` with that error.

A worker that dies mid-send leaves the reply claimed until its lease ends; then any worker
claims it again. Delivery is therefore at least once: a send whose answer was lost is
sent again. Email reuses the reply's Message-ID on every attempt, so the customer's client
shows one message; Meta's APIs take no idempotency key, so a WhatsApp or Instagram
customer may see it twice, only after a crash or timeout at the moment of sending.

Replies of one conversation leave in the order they were written: a reply is not claimed
while an earlier one of its conversation still waits (or is retried)."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.services import early_statuses
from api.services.background import BackgroundLoop
from api.services.delivery import Delivery, Unsendable, load
from api.services.whatsapp_webhook import apply_status
from connectors.sender import SendOutcome, blob_key, is_blob
from core.db.types import utcnow
from core.domain.conversations import Message
from core.domain.enums import DeliveryStatus
from core.runtime import Runtime
from core.settings import ChannelSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    message_id: uuid.UUID
    attempt: int


def backoff_s(settings: ChannelSettings, attempt: int, retry_after_s: float | None) -> float:
    """Delay before the attempt after `attempt`: exponential, with "equal jitter" (half
    fixed, half random, so that replies failed together do not all come back together),
    and never shorter than what the provider asked for."""
    ceiling = min(
        settings.delivery_backoff_max_s, settings.delivery_backoff_s * 2.0 ** (attempt - 1)
    )
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not a secret)
    return float(max(delay, retry_after_s or 0.0))


class DeliveryWorker(BackgroundLoop):
    """Sends due replies; `start()` runs it in the background, `drain()` until nothing is
    due (the CLI's `--once`, tests). `channel_ids` limits it to some channels."""

    name = "delivery-worker"

    def __init__(
        self,
        runtime: Runtime,
        settings: ChannelSettings | None = None,
        *,
        channel_ids: Collection[uuid.UUID] | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings or runtime.settings.channels
        super().__init__(
            self.settings.delivery_poll_interval_s, grace_s=2 * self.settings.http_timeout_s
        )
        self.channel_ids = list(channel_ids) if channel_ids is not None else None
        self.sent = 0
        self.failed = 0
        self.retried = 0

    # ---------------------------------------------------------------------- the queue
    def _heads(self) -> tuple[Any, Select[Any]]:
        """Replies waiting for the worker with no earlier one of their conversation
        waiting too: the alias the query selects from, and the query."""
        candidate, earlier = aliased(Message), aliased(Message)
        query = select(candidate.id).where(
            candidate.delivery_due_at.is_not(None),
            ~exists().where(
                earlier.conversation_id == candidate.conversation_id,
                earlier.delivery_due_at.is_not(None),
                earlier.id < candidate.id,
            ),
        )
        if self.channel_ids is not None:
            query = query.where(candidate.channel_id.in_(self.channel_ids))
        return candidate, query

    async def claim(self, limit: int) -> list[Claim]:
        """Take up to `limit` due replies for one attempt each, for the lease's length."""
        now = utcnow()
        candidate, heads = self._heads()
        due = heads.where(candidate.delivery_due_at <= now)
        due = due.order_by(candidate.delivery_due_at).limit(limit)
        async with self.runtime.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Several workers share the queue: each takes rows no other has locked.
                due = due.with_for_update(skip_locked=True)
            rows = await session.execute(
                update(Message)
                .where(Message.id.in_(due.scalar_subquery()))
                .values(
                    delivery_due_at=now + timedelta(seconds=self.settings.delivery_lease_s),
                    delivery_attempts=Message.delivery_attempts + 1,
                )
                .returning(Message.id, Message.delivery_attempts)
                .execution_options(synchronize_session=False)
            )
            claims = [Claim(row.id, row.delivery_attempts) for row in rows]
            await session.commit()
        return claims

    async def next_due(self) -> datetime | None:
        """When the next reply this worker could send falls due (None: none waits)."""
        candidate, heads = self._heads()
        async with self.runtime.sessions() as session:
            found: datetime | None = await session.scalar(
                heads.with_only_columns(func.min(candidate.delivery_due_at))
            )
        return found

    # ----------------------------------------------------------------------- sending
    async def _attempt(self, delivery: Delivery) -> SendOutcome:
        blobs: dict[str, bytes] = {}
        for attachment in delivery.reply.attachments:
            if is_blob(attachment):
                key = blob_key(attachment)
                try:
                    blobs[key] = await self.runtime.attachments.get(key)
                except KeyError:
                    return SendOutcome(
                        error={
                            "status": None,
                            "code": "attachment_missing",
                            "message": f"stored attachment {key} is gone",
                        }
                    )
        reply = replace(delivery.reply, blobs=blobs) if blobs else delivery.reply
        return await delivery.sender.send(delivery.config, delivery.recipient, reply)

    async def deliver(self, claim: Claim) -> str:
        """One attempt at one claimed reply; what became of it (sent, failed, retry)."""
        # Read, then closed before the send: SQLite's write lock is not held across it.
        async with self.runtime.sessions() as session:
            loaded = await load(session, claim.message_id, self.settings)
            if loaded is None:
                return "gone"
            message, delivery = loaded
            written_at = message.created_at
        provider = delivery.channel_type if isinstance(delivery, Delivery) else "relaydesk"
        if isinstance(delivery, Unsendable):
            outcome = SendOutcome(
                error={"status": None, "code": delivery.code, "message": delivery.message}
            )
        else:
            try:
                outcome = await self._attempt(delivery)
            except Exception as exc:  # a sender's bug must not lose the reply
                logger.exception("sending reply %s failed", claim.message_id)
                outcome = SendOutcome(
                    error={"status": None, "code": "internal", "message": f"{exc!r}"[:500]},
                    retryable=True,
                )
        return await self.record(claim, outcome, provider, written_at)

    async def record(
        self, claim: Claim, outcome: SendOutcome, provider: str, written_at: datetime
    ) -> str:
        now = utcnow()
        values: dict[str, Any]
        if outcome.provider_message_id is not None:
            result = "sent"
            values = {
                "delivery_status": DeliveryStatus.SENT.value,
                "provider_message_id": outcome.provider_message_id,
                "delivery_error": null(),
                "delivery_due_at": None,
            }
        else:
            error = {"provider": provider, **(outcome.error or {}), "attempts": claim.attempt}
            settings = self.settings
            exhausted = (
                claim.attempt >= settings.delivery_max_attempts
                or (now - written_at).total_seconds() >= settings.delivery_max_age_s
            )
            if outcome.retryable and not exhausted:
                result = "retry"
                delay = backoff_s(settings, claim.attempt, outcome.retry_after_s)
                values = {
                    "delivery_error": {**error, "retrying": True},
                    "delivery_due_at": now + timedelta(seconds=delay),
                }
            else:
                result = "failed"
                values = {
                    "delivery_status": DeliveryStatus.FAILED.value,
                    "delivery_error": error,
                    "delivery_due_at": None,
                }
        mine: list[ColumnElement[bool]] = [
            Message.id == claim.message_id,
            Message.delivery_attempts == claim.attempt,
            Message.delivery_due_at.is_not(None),
        ]
        async with self.runtime.sessions() as session:
            try:
                done = await session.execute(
                    update(Message)
                    .where(*mine)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if outcome.provider_message_id is not None and getattr(done, "rowcount", 1) != 0:
                    await _apply_held(session, claim.message_id, outcome.provider_message_id)
                await session.commit()
            except IntegrityError:
                # The provider answered with an id this channel already holds.
                await session.rollback()
                result = "failed"
                duplicate = {
                    "provider": provider,
                    "status": None,
                    "code": "duplicate_provider_id",
                    "message": f"the provider's id {outcome.provider_message_id} is taken",
                }
                done = await session.execute(
                    update(Message)
                    .where(*mine)
                    .values(
                        delivery_status=DeliveryStatus.FAILED.value,
                        delivery_error=duplicate,
                        delivery_due_at=None,
                    )
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
        if getattr(done, "rowcount", 1) == 0:
            logger.warning(
                "reply %s: attempt %d outlived its lease; another worker owns it",
                claim.message_id,
                claim.attempt,
            )
            return "superseded"
        self.sent += result == "sent"
        self.failed += result == "failed"
        self.retried += result == "retry"
        return result

    # ------------------------------------------------------------------------- loops
    async def tick(self) -> bool:
        """Claim and send one round of due replies; True when a full round was claimed
        (more may be due)."""
        limit = self.settings.delivery_concurrency
        claims = await self.claim(limit)
        if claims:
            await asyncio.gather(*(self.deliver(claim) for claim in claims))
        return len(claims) == limit

    async def drain(self, *, wait_s: float = 0.0) -> int:
        """Send until nothing is due; with `wait_s`, also wait for retries falling due
        within that many seconds. The number of attempts made."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        attempts = 0
        while True:
            claims = await self.claim(self.settings.delivery_concurrency)
            if claims:
                await asyncio.gather(*(self.deliver(claim) for claim in claims))
                attempts += len(claims)
                continue
            due = await self.next_due()
            if due is None:
                return attempts
            delay = max(0.0, (due - utcnow()).total_seconds())
            if loop.time() + delay > deadline:
                return attempts
            await asyncio.sleep(max(delay, 0.005))

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "sent": self.sent,
            "failed": self.failed,
            "retried": self.retried,
        }


async def _apply_held(session: AsyncSession, message_id: uuid.UUID, provider_id: str) -> None:
    """Statuses the provider posted for this id before it was recorded (only WhatsApp's
    webhook holds them: api/services/early_statuses.py), applied in order."""
    message = await session.get(Message, message_id)
    if message is None:
        return
    for held in await early_statuses.take(session, message.channel_id, provider_id):
        apply_status(message, held.status, held.errors)


async def send_in_request(runtime: Runtime, channel_ids: Collection[uuid.UUID]) -> None:
    """Send the due replies of `in_request` channels from this process, right after the
    request that stored them committed: the web widget's sockets are held by the API
    processes, and a worker elsewhere (the ChannelWorkers replica on Serve) could reach
    them only through Redis. A failure leaves the reply queued for the worker."""
    if not channel_ids:
        return
    try:
        await DeliveryWorker(runtime, channel_ids=channel_ids).drain()
    except Exception:
        logger.exception("in-request delivery to %s failed; left to the worker", channel_ids)
