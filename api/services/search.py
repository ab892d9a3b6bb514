"""Full-text search: PostgreSQL text search or SQLite FTS5, behind one function.

PostgreSQL matches the expression indexes created by the first migration, so the
expressions below must stay the same as those index definitions (a table alias does not
matter; the function, configuration and columns do)."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.engine import dialect_name

# One IN over a UNION, not `subject matches OR id IN (...)`: with the OR, PostgreSQL can use
# neither GIN index for the subject branch and computes to_tsvector on every ticket of the
# tenant walking the primary key (1.1 s at 100k tickets for a term that matches nothing).
# The UNION lets each branch use its own index; the set of tickets is the same.
_PG_TICKETS = """tickets.id IN (
  SELECT t.id FROM tickets t
  WHERE to_tsvector('simple', t.subject || ' ' || t.description)
    @@ websearch_to_tsquery('simple', :fts_q)
  UNION
  SELECT tc.ticket_id FROM ticket_conversations tc
  JOIN messages m ON m.conversation_id = tc.conversation_id
  WHERE to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', :fts_q)
)"""

_SQLITE_TICKETS = """(
  tickets.rowid IN (SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH :fts_q)
  OR tickets.id IN (
    SELECT tc.ticket_id FROM ticket_conversations tc
    JOIN messages m ON m.conversation_id = tc.conversation_id
    WHERE m.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :fts_q)
  )
)"""

_PG_CONVERSATIONS = """conversations.id IN (
  SELECT m.conversation_id FROM messages m
  WHERE to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', :fts_q)
)"""

_SQLITE_CONVERSATIONS = """conversations.id IN (
  SELECT m.conversation_id FROM messages m
  WHERE m.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :fts_q)
)"""

_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts5_query(q: str) -> str:
    """User text as an FTS5 query of quoted terms (all must match). Quoting keeps FTS5's
    operators and punctuation from turning user input into a syntax error."""
    terms = _TOKEN.findall(q)
    return " ".join(f'"{t}"' for t in terms) or '""'


def _clause(session: AsyncSession, q: str, pg: str, lite: str) -> ColumnElement[bool]:
    if dialect_name(session) == "postgresql":
        return text(pg).bindparams(fts_q=q)  # type: ignore[return-value]
    return text(lite).bindparams(fts_q=fts5_query(q))  # type: ignore[return-value]


def ticket_text_match(session: AsyncSession, q: str) -> ColumnElement[bool]:
    """Tickets whose subject or description, or any message of a linked conversation,
    contains every word of `q`."""
    return _clause(session, q, _PG_TICKETS, _SQLITE_TICKETS)


def conversation_text_match(session: AsyncSession, q: str) -> ColumnElement[bool]:
    return _clause(session, q, _PG_CONVERSATIONS, _SQLITE_CONVERSATIONS)
