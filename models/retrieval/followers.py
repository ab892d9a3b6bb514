"""Keeping one tenant's index current with the database, in the background.

A `Follower` runs passes over its table: the first pass (and one every `reconcile_seconds`)
lists every visible row and drops what is no longer there; the others read only rows
changed since the watermark (`feed.py`). A search asks `fresh()`, which starts a pass when
the last one began more than `poll_seconds` ago and waits for it up to `wait_seconds`: a
small change is applied before the search runs, while a large backfill (a tenant's first
thousands of articles) serves what is indexed so far instead of blocking the caller."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.retrieval.centering import LanguageCentroids
from models.retrieval.feed import ChangeFeed, RowState
from models.retrieval.kb_index import ArticleDoc, KbIndex, RetrievalParams
from models.retrieval.replies import ReplyIndex, reply_cases
from models.retrieval.sources import (
    ArticleRow,
    Cursor,
    article_states,
    conversation_states,
    load_articles,
    load_messages,
)
from models.retrieval.vectors import VectorIndex

__all__ = [
    "AsyncEmbed",
    "Deps",
    "Follower",
    "KbFollower",
    "ReplyFollower",
    "RetrievalUnavailableError",
    "Timing",
]

logger = logging.getLogger(__name__)

F32Array = npt.NDArray[np.float32]
AsyncEmbed = Callable[[list[str], Literal["query", "passage"]], Awaitable[np.ndarray]]
PAGE = 200  # rows listed per query; their texts are embedded together
EMBED_BATCH = 128  # texts per embed call


class RetrievalUnavailableError(RuntimeError):
    """The index could not be built from the database (it never completed a pass)."""


@dataclass(frozen=True, slots=True)
class Timing:
    poll_seconds: float = 2.0
    wait_seconds: float = 10.0
    overlap: timedelta = timedelta(seconds=30)
    reconcile_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class Deps:
    """What every follower of a `Retrieval` shares."""

    sessions: async_sessionmaker[AsyncSession]
    embed: AsyncEmbed
    centroids: Callable[[], Awaitable[LanguageCentroids]]
    vector_index: Callable[[int], VectorIndex]
    timing: Timing


class Follower(ABC):
    """The pass loop shared by the article and conversation indexes of one tenant."""

    name = "index"

    def __init__(self, tenant_id: uuid.UUID, deps: Deps) -> None:
        self.tenant_id = tenant_id
        self.sessions = deps.sessions
        self.embed = deps.embed
        self.centroids = deps.centroids
        self.vector_index = deps.vector_index
        self.timing = deps.timing
        self.feed = ChangeFeed(deps.timing.overlap)
        self.lock = asyncio.Lock()  # index changes and searches
        self.ready = False  # a full pass has completed
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._checked = -math.inf
        self._full_at = -math.inf

    async def fresh(self, *, force: bool = False) -> None:
        """Catch up if the last pass began more than `poll_seconds` ago (or now, `force`),
        waiting for the pass up to `wait_seconds`."""
        if force or time.monotonic() - self._checked >= self.timing.poll_seconds:
            self._start(force)
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), self.timing.wait_seconds)
            except TimeoutError:
                logger.info(
                    "%s of %s still catching up; serving it as is", self.name, self.tenant_id
                )
        if not self.ready and self.error is not None:
            raise RetrievalUnavailableError(
                f"the {self.name} of tenant {self.tenant_id} could not be built: {self.error!r}"
            ) from self.error

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _start(self, force: bool) -> None:
        self._checked = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-{self.tenant_id}")
        elif force:
            self._again = True  # the pass in flight may have listed rows before the write

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self._pass()
                self.error = None
            except Exception as exc:
                logger.exception("%s pass for tenant %s failed", self.name, self.tenant_id)
                self.error = exc
                return
            if not self._again:
                return

    async def _pass(self) -> None:
        full = not self.ready or time.monotonic() - self._full_at >= self.timing.reconcile_seconds
        started = time.monotonic()
        since = None if full else self.feed.since
        after: Cursor | None = None
        listed: set[uuid.UUID] = set()
        changed = 0
        while True:
            async with self.sessions() as session:
                states = await self._states(session, since, after, full)
            if not states:
                break
            after = (states[-1].updated_at, states[-1].id)
            listed.update(s.id for s in states)
            fresh = self.feed.fresh(states)
            if fresh:
                await self._apply(fresh)
                changed += len(fresh)
            self.feed.seen(states)
            if len(states) < PAGE:
                break
        if full:
            gone = self.feed.vanished(listed)
            if gone:
                await self._drop(gone)
                changed += len(gone)
            self._full_at = started
            self.ready = True
        if changed:
            logger.info(
                "%s of tenant %s: %d changes applied in %.1f ms (%s pass)",
                self.name,
                self.tenant_id,
                changed,
                (time.monotonic() - started) * 1e3,
                "full" if full else "incremental",
            )

    async def _embed(self, texts: list[str], kind: Literal["query", "passage"]) -> F32Array:
        parts = [
            np.asarray(await self.embed(texts[i : i + EMBED_BATCH], kind), dtype=np.float32)
            for i in range(0, len(texts), EMBED_BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    @abstractmethod
    async def _states(
        self,
        session: AsyncSession,
        since: datetime | None,
        after: Cursor | None,
        full: bool,
    ) -> list[RowState]: ...

    @abstractmethod
    async def _apply(self, fresh: list[RowState]) -> None: ...

    @abstractmethod
    async def _drop(self, ids: list[uuid.UUID]) -> None: ...


class KbFollower(Follower):
    """Published, not deleted articles → `KbIndex`; an edit re-embeds that article only."""

    name = "knowledge base"

    def __init__(self, tenant_id: uuid.UUID, deps: Deps, params: RetrievalParams) -> None:
        super().__init__(tenant_id, deps)
        self.params = params
        self.index: KbIndex | None = None
        self._digests: dict[uuid.UUID, str] = {}

    async def _states(
        self,
        session: AsyncSession,
        since: datetime | None,
        after: Cursor | None,
        full: bool,
    ) -> list[RowState]:
        return await article_states(
            session, self.tenant_id, since=since, after=after, limit=PAGE, visible_only=full
        )

    async def _index(self) -> KbIndex:
        if self.index is None:
            self.index = KbIndex(self.vector_index, self.params, centroids=await self.centroids())
        return self.index

    async def _apply(self, fresh: list[RowState]) -> None:
        index = await self._index()
        wanted = [s.id for s in fresh if s.visible]
        async with self.sessions() as session:
            rows = {r.state.id: r for r in await load_articles(session, self.tenant_id, wanted)}
        hide = [s.id for s in fresh if not s.visible or s.id not in rows]
        embed: list[ArticleRow] = []
        for row in rows.values():
            if not row.state.visible:
                hide.append(row.state.id)
            elif self._digests.get(row.state.id) != _digest(row) or row.state.id not in index:
                embed.append(row)
        docs = [ArticleDoc(r.state.id, r.title, r.body, r.language) for r in embed]
        passages = [index.passages(d) for d in docs]
        vectors = await self._embed([p for group in passages for p in group], "passage")

        def change() -> None:
            index.remove(hide)
            start = 0
            for doc, group in zip(docs, passages, strict=True):
                index.put(doc, vectors[start : start + len(group)])
                start += len(group)

        async with self.lock:
            await asyncio.to_thread(change)
        for article_id in hide:
            self._digests.pop(article_id, None)
        for row in embed:
            self._digests[row.state.id] = _digest(row)
        for state in fresh:
            self.feed.applied(rows[state.id].state if state.id in rows else state)

    async def _drop(self, ids: list[uuid.UUID]) -> None:
        if self.index is None:
            return
        index = self.index
        async with self.lock:
            await asyncio.to_thread(index.remove, ids)
        for article_id in ids:
            self._digests.pop(article_id, None)


def _digest(row: ArticleRow) -> str:
    text = f"{row.title}\0{row.body}\0{row.language or ''}"
    return hashlib.sha256(text.encode()).hexdigest()


class ReplyFollower(Follower):
    """Resolved, unmerged conversations → `ReplyIndex`; a reopened one leaves it."""

    name = "reply index"

    def __init__(self, tenant_id: uuid.UUID, deps: Deps) -> None:
        super().__init__(tenant_id, deps)
        self.index: ReplyIndex | None = None

    async def _states(
        self,
        session: AsyncSession,
        since: datetime | None,
        after: Cursor | None,
        full: bool,
    ) -> list[RowState]:
        return await conversation_states(
            session, self.tenant_id, since=since, after=after, limit=PAGE, visible_only=full
        )

    async def _index(self) -> ReplyIndex:
        if self.index is None:
            self.index = ReplyIndex(self.vector_index, centroids=await self.centroids())
        return self.index

    async def _apply(self, fresh: list[RowState]) -> None:
        index = await self._index()
        shown = [s.id for s in fresh if s.visible]
        async with self.sessions() as session:
            messages = await load_messages(session, self.tenant_id, shown)
        cases = {cid: reply_cases(messages.get(cid, [])) for cid in shown}
        flat = [c for cid in shown for c in cases[cid]]
        vectors = await self._embed([c.customer_text for c in flat], "query")
        hide = [s.id for s in fresh if not s.visible]

        def change() -> None:
            index.remove(hide)
            start = 0
            for cid in shown:
                group = cases[cid]
                index.put(cid, group, vectors[start : start + len(group)])
                start += len(group)

        async with self.lock:
            await asyncio.to_thread(change)
        for state in fresh:
            self.feed.applied(state)

    async def _drop(self, ids: list[uuid.UUID]) -> None:
        if self.index is None:
            return
        index = self.index
        async with self.lock:
            await asyncio.to_thread(index.remove, ids)
