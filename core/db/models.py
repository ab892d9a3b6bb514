"""Imports every table so that `Base.metadata` is complete (Alembic, tests)."""

from __future__ import annotations

from core.db.base import Base
from core.domain.analyses import ConversationInsight, MessageAnalysis
from core.domain.attachments import Attachment
from core.domain.channels import (
    Channel,
    EarlyStatus,
    MailboxCursor,
    MessageTemplate,
    TemplateSync,
)
from core.domain.conversations import Conversation, Message, Note
from core.domain.customers import Customer, CustomerIdentity
from core.domain.feedback import AnalysisFeedback, RetrainMark
from core.domain.idempotency import IdempotencyRecord
from core.domain.intents import TenantIntent
from core.domain.knowledge import KbArticle
from core.domain.sla import SlaPolicy
from core.domain.tenancy import ApiKey, Team, Tenant, User, team_members
from core.domain.tickets import Ticket, ticket_conversations
from core.events.store import EventRecord, OutboxRecord

__all__ = [
    "AnalysisFeedback",
    "ApiKey",
    "Attachment",
    "Base",
    "Channel",
    "Conversation",
    "ConversationInsight",
    "Customer",
    "CustomerIdentity",
    "EarlyStatus",
    "EventRecord",
    "IdempotencyRecord",
    "KbArticle",
    "MailboxCursor",
    "Message",
    "MessageAnalysis",
    "MessageTemplate",
    "Note",
    "OutboxRecord",
    "RetrainMark",
    "SlaPolicy",
    "Team",
    "TemplateSync",
    "Tenant",
    "TenantIntent",
    "Ticket",
    "User",
    "team_members",
    "ticket_conversations",
]
