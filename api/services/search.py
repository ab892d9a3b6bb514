"""Full-text search: PostgreSQL text search or SQLite FTS5, behind one function.

On PostgreSQL, conversation search matches the expression index on messages created by the
first migration, so its expression must stay the same as that index definition."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, String, bindparam, text

# PostgreSQL: the per-ticket document kept by triggers (migration 0002) holds the subject,
# the description and the messages of linked conversations, so one GIN-indexed column
# answers the search and the planner can stop at the newest 50 matches.
_PG_TICKETS = "tickets.search_document @@ websearch_to_tsquery('simple', :fts_q)"

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


def search_term(dialect: str, q: str) -> str:
    """The value the text-match clauses' `fts_q` parameter takes for `q`."""
    return q if dialect == "postgresql" else fts5_query(q)


def _clause(dialect: str, pg: str, lite: str) -> ColumnElement[bool]:
    # Typed, so that PostgreSQL gets `$n::VARCHAR` as it did with a value bound here.
    clause = text(pg if dialect == "postgresql" else lite)
    return clause.bindparams(bindparam("fts_q", type_=String))  # type: ignore[return-value]


def ticket_text_match(dialect: str) -> ColumnElement[bool]:
    """Tickets whose subject or description, or any message of a linked conversation,
    contains every word of the `fts_q` parameter (see `search_term`)."""
    return _clause(dialect, _PG_TICKETS, _SQLITE_TICKETS)


def conversation_text_match(dialect: str) -> ColumnElement[bool]:
    return _clause(dialect, _PG_CONVERSATIONS, _SQLITE_CONVERSATIONS)
