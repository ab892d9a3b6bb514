"""ticket search document (PostgreSQL)

A ticket matches a search when its subject, its description or any message of a linked
conversation does. Evaluated at query time, that means visiting every matching message
(55,000 for a common word at a million messages) before the newest 50 tickets can be
picked. A stored document per ticket, kept current by triggers, lets PostgreSQL walk the
newest tickets for a common word or use the GIN index for a rare one: under 1 ms either way.

SQLite keeps its FTS5 tables: the embedded mode's data is small.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Bounds in the SQL below: a document stops growing past 30,000 distinct lexemes, and a
# rebuild reads the newest 500 messages, because PostgreSQL caps a tsvector at 1 MB and a
# message that overflowed it would fail to insert.
_UP = [
    "ALTER TABLE tickets ADD COLUMN search_document tsvector NOT NULL DEFAULT ''::tsvector",
    """CREATE FUNCTION relaydesk_ticket_document(ticket uuid, subject text, description text)
    RETURNS tsvector LANGUAGE sql STABLE AS $$
      SELECT to_tsvector('simple', subject || ' ' || description) || coalesce(
        (SELECT to_tsvector('simple', string_agg(recent.text, ' '))
         FROM (SELECT m.text FROM ticket_conversations tc
               JOIN messages m ON m.conversation_id = tc.conversation_id
               WHERE tc.ticket_id = ticket
               ORDER BY m.id DESC LIMIT 500) AS recent),
        ''::tsvector)
    $$""",
    """CREATE FUNCTION relaydesk_tickets_document() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.search_document := relaydesk_ticket_document(NEW.id, NEW.subject, NEW.description);
      RETURN NEW;
    END $$""",
    "CREATE TRIGGER tickets_document BEFORE INSERT OR UPDATE OF subject, description "
    "ON tickets FOR EACH ROW EXECUTE FUNCTION relaydesk_tickets_document()",
    """CREATE FUNCTION relaydesk_ticket_links_document() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE tickets t
      SET search_document = relaydesk_ticket_document(t.id, t.subject, t.description)
      WHERE t.id IN (SELECT ticket_id FROM changed_links);
      RETURN NULL;
    END $$""",
    # Statement-level with transition tables: a merge that moves many links rebuilds each
    # affected ticket once, not once per row.
    "CREATE TRIGGER ticket_links_document_ins AFTER INSERT ON ticket_conversations "
    "REFERENCING NEW TABLE AS changed_links "
    "FOR EACH STATEMENT EXECUTE FUNCTION relaydesk_ticket_links_document()",
    "CREATE TRIGGER ticket_links_document_upd_new AFTER UPDATE ON ticket_conversations "
    "REFERENCING NEW TABLE AS changed_links "
    "FOR EACH STATEMENT EXECUTE FUNCTION relaydesk_ticket_links_document()",
    "CREATE TRIGGER ticket_links_document_del AFTER DELETE ON ticket_conversations "
    "REFERENCING OLD TABLE AS changed_links "
    "FOR EACH STATEMENT EXECUTE FUNCTION relaydesk_ticket_links_document()",
    """CREATE FUNCTION relaydesk_message_document() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE tickets t SET search_document = t.search_document || to_tsvector('simple', n.text)
      FROM new_messages n
      JOIN ticket_conversations tc ON tc.conversation_id = n.conversation_id
      WHERE t.id = tc.ticket_id AND length(t.search_document) < 30000;
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER messages_document_ins AFTER INSERT ON messages "
    "REFERENCING NEW TABLE AS new_messages "
    "FOR EACH STATEMENT EXECUTE FUNCTION relaydesk_message_document()",
    # A message moved to another conversation (merge) or edited: rebuild the tickets of
    # both threads. Delivery-status updates change neither column and cost one empty join.
    """CREATE FUNCTION relaydesk_message_moved_document() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE tickets t
      SET search_document = relaydesk_ticket_document(t.id, t.subject, t.description)
      WHERE t.id IN (
        SELECT tc.ticket_id FROM ticket_conversations tc
        WHERE tc.conversation_id IN (
          SELECT o.conversation_id FROM old_messages o JOIN new_messages n ON n.id = o.id
          WHERE o.conversation_id <> n.conversation_id OR o.text <> n.text
          UNION
          SELECT n.conversation_id FROM old_messages o JOIN new_messages n ON n.id = o.id
          WHERE o.conversation_id <> n.conversation_id OR o.text <> n.text));
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER messages_document_upd AFTER UPDATE ON messages "
    "REFERENCING OLD TABLE AS old_messages NEW TABLE AS new_messages "
    "FOR EACH STATEMENT EXECUTE FUNCTION relaydesk_message_moved_document()",
    "UPDATE tickets SET search_document = relaydesk_ticket_document(id, subject, description)",
    # A small pending list: with the default (4 MB) a burst of writes makes the index look
    # expensive and the planner walks every ticket for a rare term (searches/s after writes
    # 95 -> 250 in bench/api_bench.py).
    "CREATE INDEX ix_tickets_search_document ON tickets USING gin (search_document) "
    "WITH (gin_pending_list_limit = 128)",
    # Replaced by the document.
    "DROP INDEX IF EXISTS ix_tickets_subject_fts",
]

_DOWN = [
    "CREATE INDEX ix_tickets_subject_fts ON tickets "
    "USING gin (to_tsvector('simple', subject || ' ' || description))",
    "DROP INDEX IF EXISTS ix_tickets_search_document",
    "DROP TRIGGER IF EXISTS messages_document_upd ON messages",
    "DROP FUNCTION IF EXISTS relaydesk_message_moved_document()",
    "DROP TRIGGER IF EXISTS messages_document_ins ON messages",
    "DROP FUNCTION IF EXISTS relaydesk_message_document()",
    "DROP TRIGGER IF EXISTS ticket_links_document_del ON ticket_conversations",
    "DROP TRIGGER IF EXISTS ticket_links_document_upd_new ON ticket_conversations",
    "DROP TRIGGER IF EXISTS ticket_links_document_ins ON ticket_conversations",
    "DROP FUNCTION IF EXISTS relaydesk_ticket_links_document()",
    "DROP TRIGGER IF EXISTS tickets_document ON tickets",
    "DROP FUNCTION IF EXISTS relaydesk_tickets_document()",
    "DROP FUNCTION IF EXISTS relaydesk_ticket_document(uuid, text, text)",
    "ALTER TABLE tickets DROP COLUMN IF EXISTS search_document",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _DOWN:
        op.execute(statement)
